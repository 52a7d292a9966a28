"""Learning-rate schedule: constant, then linear decay to zero (paper sec. 4).

A pure function of the epoch, so a resumed run needs nothing but the epoch to continue.
`start_epoch` lets a resumed run begin a new schedule segment with new settings.
"""

from __future__ import annotations


def lr_factor(epoch: int, epochs: int, epochs_decay: int, start_epoch: int = 0) -> float:
    """Multiplier of the initial lr during 0-based `epoch` (counted from `start_epoch`).

    1 for the first `epochs` epochs, then 1 - k / (epochs_decay + 1) in the k-th decay epoch,
    so the last epoch still learns a little and the next would reach 0.
    """
    elapsed = epoch - start_epoch
    if elapsed < epochs:
        return 1.0
    decayed = elapsed - epochs + 1
    return max(0.0, 1.0 - decayed / (epochs_decay + 1))
