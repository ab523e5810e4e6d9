"""Cox proportional-hazards loss: negative Breslow partial log-likelihood per event."""

from __future__ import annotations

import torch

from braindino.losses._common import check, check_tensor, full_precision, upcast


def cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Breslow partial log-likelihood of predicted log-risks, divided by the event count.

    ``risk`` is ``[N]`` (or ``[N, 1]``) log hazard ratios — higher risk means an earlier event;
    ``time`` is ``[N]`` follow-up times and ``event`` ``[N]`` (bool or 0/1: 1 = the event was
    observed, 0 = censored). For every subject i with an event the loss adds
    −(r_i − log Σ_{j: t_j ≥ t_i} exp(r_j)); subjects with tied times share one risk set that
    contains all of them (Breslow's handling of ties). The sum is divided by the number of
    events; with no events the loss is 0 (not NaN), still attached to the graph. Runs in
    O(N log N), in float32 with autocast off (float64 inputs stay float64); returns a scalar.
    """
    where = "cox_loss"
    check_tensor(risk, f"{where}(risk)", (1, 2))
    check(
        risk.dim() == 1 or risk.shape[1] == 1,
        f"{where}(risk)",
        f"expected shape [N] or [N, 1], got {tuple(risk.shape)}",
        "pass one predicted log-risk per subject",
    )
    check_tensor(time, f"{where}(time)", 1)
    check_tensor(event, f"{where}(event)", 1)
    risk = risk.reshape(-1)
    n = risk.shape[0]
    for name, value in (("time", time), ("event", event)):
        check(
            value.shape[0] == n,
            f"{where}({name})",
            f"has {value.shape[0]} entries for {n} risks",
            "pass one time and one event flag per subject",
        )
    with full_precision(risk):
        risk = upcast(risk)
        time = time.to(risk.device)
        observed = event.to(risk.device).bool()
        order = torch.argsort(time)
        sorted_time = time[order].contiguous()
        sorted_risk = risk[order]
        # log Σ_{k >= m} exp(sorted_risk[k]) for every position m, by a reversed cumulative sum.
        tail_logsumexp = torch.logcumsumexp(sorted_risk.flip(0), dim=0).flip(0)
        # The risk set of time t starts at the first sorted position holding a time >= t.
        first_at_risk = torch.searchsorted(sorted_time, time.contiguous(), side="left")
        log_risk_set = tail_logsumexp[first_at_risk]
        n_events = observed.sum()
        total = ((log_risk_set - risk) * observed).sum()
        return total / n_events.clamp(min=1)
