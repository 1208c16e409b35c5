"""The demo user's flashcards with a month of reviews (``flask seed``), made by running
the real scheduler (eleva.core.study) over simulated study days, so that the queue and
the statistics show something on a first run."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select

from eleva.core import study
from eleva.data.db import db
from eleva.data.models import Card, Review, Subject

DEMO_CARDS = {
    "Linear algebra": [
        ("What is an eigenvalue of *A*?", "A λ with *Av* = λ*v* for some *v* ≠ 0."),
        ("det(*AB*) = ?", "det(*A*) · det(*B*)"),
        ("When is a square matrix invertible?", "When its determinant is not 0."),
        ("Rank–nullity theorem", "rank(*A*) + nullity(*A*) = number of columns"),
        ("What is an orthogonal matrix?", "*QᵀQ* = *I*: its columns are orthonormal."),
        ("Trace of *A*", "The sum of its diagonal entries (= the sum of its eigenvalues)."),
        ("A basis of a vector space", "A linearly independent set that spans it."),
        ("Dimension of the space of 2×2 matrices", "4"),
        ("What does Gram–Schmidt produce?", "An orthonormal basis of the same span."),
        ("Symmetric real matrices have …", "real eigenvalues and an orthonormal eigenbasis."),
        ("(*AB*)ᵀ = ?", "*Bᵀ Aᵀ*"),
        ("What is the kernel of *A*?", "All *x* with *Ax* = 0."),
    ],
    "Organic chemistry": [
        ("Functional group of an alcohol", "–OH (hydroxyl)"),
        ("SN1 or SN2: tertiary substrate?", "SN1 (a stable carbocation)"),
        ("What is a chiral centre?", "A carbon bonded to four different groups."),
        ("Markovnikov's rule", "H adds to the carbon with more H already."),
        ("General formula of alkanes", "CₙH₂ₙ₊₂"),
        ("Functional group of a ketone", "C=O between two carbons"),
        ("What is an enantiomer?", "A non-superimposable mirror image."),
        ("Hybridisation of carbon in ethene", "sp²"),
        ("Ester from acid + alcohol is called …", "Fischer esterification"),
        ("Nucleophile", "An electron-pair donor."),
        ("E2 needs which geometry?", "Anti-periplanar H and leaving group."),
        ("Benzene's π electrons", "6, delocalised (aromatic)."),
    ],
    "World history": [
        ("Fall of the Western Roman Empire", "476"),
        ("Treaty of Westphalia", "1648: the end of the Thirty Years' War."),
        ("Start of the French Revolution", "1789"),
        ("Congress of Vienna", "1814–1815"),
        ("Meiji Restoration", "1868"),
        ("Berlin Wall falls", "9 November 1989"),
        ("Magna Carta", "1215"),
        ("Columbus reaches the Americas", "1492"),
        ("Peace of Augsburg", "1555: cuius regio, eius religio."),
        ("End of World War I", "11 November 1918"),
        ("Battle of Hastings", "1066"),
        ("Independence of India", "15 August 1947"),
    ],
}
SIMULATED_DAYS = 30
NEW_PER_DAY = 1
# How a plausible student answers: again, hard, good, easy.
RATING_WEIGHTS = (0.12, 0.15, 0.58, 0.15)


def seed_demo_cards(owner_id: int, *, now: datetime, seed: int = 29) -> tuple[int, int]:
    """Give the owner's demo subjects their cards and a month of reviews, unless they
    have cards already; (cards, reviews) added."""
    if db.session.scalar(select(func.count()).where(Card.owner_id == owner_id)):
        return 0, 0
    subjects = dict(
        db.session.execute(
            select(Subject.name, Subject.id).where(
                Subject.owner_id == owner_id, Subject.name.in_(DEMO_CARDS)
            )
        ).all()
    )
    rng = random.Random(seed)  # noqa: S311 (a demo student's answers, reproducible)
    start = now - timedelta(days=SIMULATED_DAYS + 1)
    cards = []
    for name, pairs in DEMO_CARDS.items():
        if name in subjects:
            for front, back in pairs:
                cards.append({"subject_id": subjects[name], "front": front, "back": back})
    schedules = [study.Schedule("new", None, None, None, start, None, 0, 0) for _ in cards]
    history: list[list[tuple[int, datetime, int, study.Schedule, study.Schedule]]] = [
        [] for _ in cards
    ]
    settings = study.StudySettings()
    for day in range(SIMULATED_DAYS):
        moment = start + timedelta(days=day + 1, hours=rng.randint(7, 20))
        introduced = 0
        for _ in range(400):  # one session: due cards, learning steps as they come
            due = [
                i for i, s in enumerate(schedules)
                if s.state != "new" and s.due <= moment + timedelta(minutes=15)
            ]  # fmt: skip
            fresh = [i for i, s in enumerate(schedules) if s.state == "new"]
            if not due and (introduced >= NEW_PER_DAY or not fresh):
                break
            if due:
                i = min(due, key=lambda j: schedules[j].due)
                moment = max(moment, schedules[i].due)
            else:
                i = fresh[0]
                introduced += 1
            rating = rng.choices((1, 2, 3, 4), RATING_WEIGHTS)[0]
            before = schedules[i]
            after = study.review(
                i + 1, before, rating, moment, desired_retention=settings.desired_retention
            )
            schedules[i] = after
            history[i].append((rating, moment, rng.randint(2_000, 20_000), before, after))
            moment += timedelta(seconds=rng.randint(5, 40))
    rows = [
        {
            "owner_id": owner_id,
            **card,
            "state": s.state,
            "step": s.step,
            "stability": s.stability,
            "difficulty": s.difficulty,
            # A card never reviewed is due since its creation.
            "due": s.due if s.state != "new" else start,
            "last_review_at": s.last_review_at,
            "reps": s.reps,
            "lapses": s.lapses,
            "created_at": start,
            "updated_at": start,
        }
        for card, s in zip(cards, schedules, strict=True)
    ]
    ids = db.session.scalars(
        insert(Card).returning(Card.id, sort_by_parameter_order=True), rows
    ).all()
    reviews = [
        {
            "owner_id": owner_id,
            "card_id": card_id,
            "rating": rating,
            "reviewed_at": at,
            "duration_ms": duration,
            "before_state": before.state,
            "before_step": before.step,
            "before_stability": before.stability,
            "before_difficulty": before.difficulty,
            "before_due": before.due,
            "before_last_review_at": before.last_review_at,
            "before_reps": before.reps,
            "before_lapses": before.lapses,
            "state": after.state,
            "step": after.step,
            "stability": after.stability,
            "difficulty": after.difficulty,
            "due": after.due,
            "created_at": at,
        }
        for card_id, reviewed in zip(ids, history, strict=True)
        for rating, at, duration, before, after in reviewed
    ]
    if reviews:
        db.session.execute(insert(Review), reviews)
    db.session.commit()
    return len(ids), len(reviews)
