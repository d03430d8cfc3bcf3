"""The feedback loop: reviewers' corrections train a challenger, which is compared, then maybe promoted."""

from __future__ import annotations


class FeedbackError(ValueError):
    """A retrain, comparison or promotion that cannot go ahead; the message says why and what to do."""


__all__ = ["FeedbackError"]
