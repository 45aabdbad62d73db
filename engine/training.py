"""What happens to interactions before a recipe sees them: event selection and the service's minimums."""


import numpy as np

# The service's training minimums (limits page), with its error texts.
MIN_INTERACTIONS = 1000
MIN_USERS_WITH_TWO = 25
MIN_SHARE_OF_USERS_WITH_TWO = 0.01


class TrainingDataError(ValueError):
    """The data cannot train a model; the message is the solution version's failureReason."""


def select_events(interactions, *, event_type: str | None = None, event_value_threshold=None):
    """The interactions a solution trains on: one event type when the solution names one, and only
    events whose value reaches the solution's eventValueThreshold."""
    mask = np.ones(len(interactions.user_ids), dtype=bool)
    if event_type:
        mask &= np.char.lower(interactions.event_types.astype(str)) == event_type.lower()
    if event_value_threshold not in (None, ""):
        try:
            threshold = float(event_value_threshold)
        except ValueError:
            raise TrainingDataError(
                f"eventValueThreshold={event_value_threshold!r} is not a number."
            ) from None
        # Events without a value cannot reach a threshold.
        mask &= np.nan_to_num(interactions.event_values, nan=-np.inf) >= threshold
    return interactions.subset(mask)


def check_training_minimums(interactions) -> None:
    n = len(interactions.user_ids)
    if n < MIN_INTERACTIONS:
        raise TrainingDataError(
            f"Create failed. Dataset has {n} interactions after event type and value filtering; "
            f"training needs at least {MIN_INTERACTIONS}."
        )
    _, per_user = np.unique(interactions.user_ids, return_counts=True)
    with_two = int((per_user >= 2).sum())
    if with_two < MIN_USERS_WITH_TWO:
        raise TrainingDataError(
            f"Create failed. Dataset has fewer than {MIN_USERS_WITH_TWO} users with at least 2 interactions each."
        )
    if with_two < MIN_SHARE_OF_USERS_WITH_TWO * len(per_user):
        raise TrainingDataError("Create failed. Fewer than 1% of users have at least 2 interactions each.")
