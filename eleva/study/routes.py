"""/api/v1/subjects/<id>/cards, /api/v1/cards/<id>, /api/v1/reviews — flashcards in the
caller's own subjects, their reviews, the queue and statistics (another user's card,
subject or note answers 404, or a field error when named in a body)."""

from __future__ import annotations

from flask import jsonify, url_for
from flask.views import MethodView

from eleva.http.api import Blueprint, json_body_limit
from eleva.services import cards, study
from eleva.services.auth import CurrentUser
from eleva.study.schemas import (
    BACK_MAX,
    CARD_EXAMPLE,
    FRONT_MAX,
    QUEUE_EXAMPLE,
    REVIEW_EXAMPLE,
    REVIEW_RESULT_EXAMPLE,
    STATS_EXAMPLE,
    CardBulkSchema,
    CardCreateSchema,
    CardIdsSchema,
    CardQuerySchema,
    CardSchema,
    CardUpdateSchema,
    IdempotencyHeaderSchema,
    QueueQuerySchema,
    QueueSchema,
    ReviewCreateSchema,
    ReviewResultSchema,
    ReviewSchema,
    StatsQuerySchema,
    StatsSchema,
)

blp = Blueprint(
    "study", __name__, description="Flashcards scheduled by FSRS, the review queue, statistics"
)

# Ids are PostgreSQL integers: a larger number in the URL is simply not found.
SUBJECT_ID = "<int(min=1, max=2147483647):subject_id>"
CARD_ID = "<int(min=1, max=2147483647):card_id>"

# A card at its largest however the client encodes it (a non-ASCII character escaped
# as a surrogate pair is 12 bytes), plus room for the keys: about 300 KiB.
CARD_BODY_BYTES = (FRONT_MAX + BACK_MAX) * 12 + 64 * 1024
# A bulk create: 16 MiB of JSON, whatever it holds (1,000 cards of 8,000 ASCII
# characters; fewer when they are larger or escaped).
BULK_BODY_BYTES = 16 * 1024 * 1024

REVIEW_RESULT = ReviewResultSchema()


@blp.route(f"/subjects/{SUBJECT_ID}/cards")
class SubjectCards(MethodView):
    @blp.login_required
    @blp.arguments(CardQuerySchema, location="query")
    @blp.response(200, CardSchema(many=True), example=[CARD_EXAMPLE])
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(page_size=20, max_page_size=100)
    def get(self, me: CurrentUser, query, subject_id, pagination_parameters):
        """List a subject's cards: filter by state and suspension, sort, paginate."""
        result = cards.list_cards(
            me.id,
            subject_id,
            **query,
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = result.total
        return result.items

    @blp.login_required
    @json_body_limit(CARD_BODY_BYTES)
    @blp.arguments(CardCreateSchema)
    @blp.response(
        201,
        CardSchema,
        example={**CARD_EXAMPLE, "state": "new", "stability": None, "difficulty": None},
        headers={"Location": {"schema": {"type": "string"}}},
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    def post(self, me: CurrentUser, data, subject_id):
        """Make a card in one of your subjects. Location: /api/v1/cards/<id>.

        A new card is due at once. `note_id`, when given, must be a note of this
        subject (else a 422 field error).
        """
        card = cards.create_card(me.id, subject_id, data)
        return card, {"Location": url_for("study.CardById", card_id=card.id)}


@blp.route(f"/subjects/{SUBJECT_ID}/cards/bulk")
class SubjectCardsBulk(MethodView):
    @blp.login_required
    @json_body_limit(BULK_BODY_BYTES)
    @blp.arguments(CardBulkSchema)
    @blp.response(201, CardIdsSchema, example={"ids": [42, 43, 44]})
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    def post(self, me: CurrentUser, data, subject_id):
        """Make 1 to 1,000 cards in one of your subjects, all or none; their ids in order.

        Errors are keyed by the card's index: `{"json": {"cards": {"3": {"front": […]}}}}`.
        The body is at most 16 MiB (413).
        """
        return {"ids": cards.create_cards(me.id, subject_id, data["cards"])}


@blp.route(f"/cards/{CARD_ID}")
class CardById(MethodView):
    @blp.login_required
    @blp.etag
    @blp.response(200, CardSchema, example=CARD_EXAMPLE)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, me: CurrentUser, card_id):
        """One of your cards, with its ETag (If-None-Match → 304)."""
        return cards.get_card(me.id, card_id)

    @blp.login_required
    @json_body_limit(CARD_BODY_BYTES)
    @blp.etag
    @blp.arguments(CardUpdateSchema)
    @blp.response(200, CardSchema, example=CARD_EXAMPLE)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    def patch(self, me: CurrentUser, changes, card_id):
        """Change any of front, back, note_id, suspended, subject_id (a move).

        Never changes the schedule. A subject or note that is not yours (or a note of
        another subject) is a 422 field error. If-Match optional (412 when stale).
        """
        card = cards.get_card(me.id, card_id, for_update=True)
        blp.check_etag(card, CardSchema)
        return cards.update_card(me.id, card, changes)

    @blp.login_required
    @blp.etag
    @blp.response(204)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, me: CurrentUser, card_id):
        """Delete a card and its reviews for good. If-Match optional (412 when stale)."""
        card = cards.get_card(me.id, card_id, for_update=True)
        blp.check_etag(card, CardSchema)
        cards.delete_card(card)


@blp.route(f"/cards/{CARD_ID}/reviews")
class CardReviews(MethodView):
    @blp.login_required
    @blp.response(200, ReviewSchema(many=True), example=[REVIEW_EXAMPLE])
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.paginate(page_size=20, max_page_size=100)
    def get(self, me: CurrentUser, card_id, pagination_parameters):
        """A card's reviews, oldest first (X-Pagination header)."""
        result = study.list_reviews(
            me.id,
            card_id,
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = result.total
        return result.items

    @blp.login_required
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.arguments(ReviewCreateSchema)
    @blp.response(201, ReviewResultSchema, example=REVIEW_RESULT_EXAMPLE)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(
        description="`reviewed_at` (default now) lets an offline client send its reviews "
        "later, in order: earlier than the card's last review or later than now + 60 s is a "
        "422 field error. With an `Idempotency-Key`, a retry within 24 hours answers what the "
        "first request answered and records nothing more; the same key with another body is "
        "a 422 (`errors.headers`). A subject's `exam_date` caps the new `due`."
    )
    def post(self, me: CurrentUser, headers, data, card_id):
        """Review a card: FSRS schedules it again from your rating."""
        answer = study.review_card(
            me.id,
            me.study,
            card_id,
            **data,
            idempotency_key=headers.get("idempotency_key"),
            render=REVIEW_RESULT.dump,
        )
        # Kept as sent the first time, so a retry gets these very bytes' content.
        return jsonify(answer), 201


@blp.route(f"/cards/{CARD_ID}/reviews/last")
class LastReview(MethodView):
    @blp.login_required
    @blp.response(200, CardSchema, example=CARD_EXAMPLE)
    @blp.alt_response(404, response="NOT_FOUND")
    def delete(self, me: CurrentUser, card_id):
        """Undo: delete the card's last review; the card is as it was before it.

        404 when the card is not yours or has no review.
        """
        return study.undo_last_review(me.id, card_id)


@blp.route("/reviews/queue")
class ReviewQueue(MethodView):
    @blp.login_required
    @blp.arguments(QueueQuerySchema, location="query")
    @blp.response(200, QueueSchema, example=QUEUE_EXAMPLE)
    @blp.doc(
        description="Due learning and relearning cards first, then due review cards, each "
        "oldest due first; then new cards in creation order, up to what is left of today's "
        "`new_cards_per_day` (a study day in your `study.timezone`, from "
        "`day_starts_at_hour`). Suspended cards never. Subjects not yours match nothing."
    )
    def get(self, me: CurrentUser, query):
        """The cards to study now, and how many there are of each kind."""
        return study.queue(
            me.id, me.study, subject_ids=query.get("subject_id"), limit=query["limit"]
        )


@blp.route("/reviews/stats")
class ReviewStats(MethodView):
    @blp.login_required
    @blp.arguments(StatsQuerySchema, location="query")
    @blp.response(200, StatsSchema, example=STATS_EXAMPLE)
    def get(self, me: CurrentUser, query):
        """Your study statistics: reviews per study day, retention, streak, forecast."""
        return study.stats(me.id, me.study, **query)
