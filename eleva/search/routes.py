"""/api/v1/search — find anything of yours: subjects, notes, documents."""

from __future__ import annotations

from flask.views import MethodView

from eleva.http.api import Blueprint
from eleva.search.schemas import SearchHitSchema, SearchQuerySchema
from eleva.services import search
from eleva.services.auth import CurrentUser

blp = Blueprint("search", __name__, description="Search across your study material")


@blp.route("")
class Search(MethodView):
    @blp.login_required
    @blp.arguments(SearchQuerySchema, location="query")
    @blp.response(200, SearchHitSchema(many=True))
    @blp.doc(
        description="Case- and accent-insensitive; every word must match, the last one also "
        "as a prefix. Subjects by name and description, notes by title and body, documents by "
        "title, file name and extracted text (once their `text_status` is ready), cards by "
        "front and back (a card's `title` is its front, cut to 120 characters). Only your own "
        "material is ever read. `snippet` is plain text around the best match (for a long "
        "document, from its first 2,000 characters); `highlights` are `[start, end)` offsets "
        "of matched words in it, in Unicode code points."
    )
    @blp.paginate(page_size=20, max_page_size=100)
    def get(self, me: CurrentUser, query, pagination_parameters):
        """Search your subjects, notes, documents and cards, most relevant first."""
        results = search.search(
            me.id,
            query["q"],
            types=query.get("type"),
            subject_id=query.get("subject_id"),
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
        )
        pagination_parameters.item_count = results.total
        return results.items
