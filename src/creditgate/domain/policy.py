"""Wallet policies: what happens when a charge does not fit the balance."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from creditgate.domain.amounts import MAX_BALANCE, check_amount
from creditgate.domain.errors import InvalidInput


class PolicyMode(StrEnum):
    BLOCK = "block"  # decline; available never goes below zero
    OVERDRAFT = "overdraft"  # allow down to -overdraft_limit
    ALLOW = "allow"  # never decline; record debt
    # overdraft that tells: usage continues past zero down to -overdraft_limit, and the
    # move that takes available to zero or below raises balance.soft_cap_reached (a paywall
    # the product shows without failing the call).
    SOFT_CAP = "soft_cap"


class DeclineReason(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    OVERDRAFT_LIMIT_REACHED = "overdraft_limit_reached"
    BALANCE_LIMIT_REACHED = "balance_limit_reached"


@dataclass(frozen=True, slots=True)
class WalletPolicy:
    mode: PolicyMode = PolicyMode.BLOCK
    overdraft_limit: int = 0
    low_balance_threshold: int | None = None

    @classmethod
    def build(
        cls,
        mode: str | PolicyMode = PolicyMode.BLOCK,
        overdraft_limit: int | None = None,
        low_balance_threshold: int | None = None,
    ) -> WalletPolicy:
        try:
            parsed = PolicyMode(mode)
        except ValueError:
            choices = ", ".join(m.value for m in PolicyMode)
            raise InvalidInput(f"policy must be one of {choices}", field="policy") from None
        limit = 0
        if parsed in (PolicyMode.OVERDRAFT, PolicyMode.SOFT_CAP):
            if overdraft_limit is None:
                raise InvalidInput(
                    f"overdraft_limit is required with the {parsed.value} policy",
                    field="overdraft_limit",
                )
            limit = check_amount(overdraft_limit, "overdraft_limit", allow_zero=True)
            if limit > MAX_BALANCE:
                raise InvalidInput(
                    f"overdraft_limit must be at most {MAX_BALANCE}", field="overdraft_limit"
                )
        elif overdraft_limit not in (None, 0):
            raise InvalidInput(
                "overdraft_limit applies only to the overdraft and soft_cap policies",
                field="overdraft_limit",
            )
        if low_balance_threshold is not None:
            check_amount(low_balance_threshold, "low_balance_threshold", allow_zero=True)
            if low_balance_threshold > MAX_BALANCE:
                raise InvalidInput(
                    "low_balance_threshold is too large", field="low_balance_threshold"
                )
        return cls(parsed, limit, low_balance_threshold)

    @property
    def effective_limit(self) -> int:
        """How far below zero `available` may go; `allow` is bounded only by the balance range."""
        return MAX_BALANCE if self.mode is PolicyMode.ALLOW else self.overdraft_limit

    def capacity(self, available: int) -> int:
        """The most that may still be reserved or debited given the current `available`."""
        return max(0, available + self.effective_limit)

    def allows(self, available: int, need: int) -> bool:
        """Whether a move needing `need` fits the policy at the current `available`: it may
        take `available` down to the floor (`-effective_limit`) and no further. For a
        positive `need` this is `capacity(available) >= need`."""
        return available + self.effective_limit >= need

    def decline_reason(self) -> DeclineReason:
        if self.mode is PolicyMode.BLOCK:
            return DeclineReason.INSUFFICIENT_FUNDS
        if self.mode in (PolicyMode.OVERDRAFT, PolicyMode.SOFT_CAP):
            return DeclineReason.OVERDRAFT_LIMIT_REACHED
        return DeclineReason.BALANCE_LIMIT_REACHED

    def soft_cap_reached(self, before: int, after: int) -> bool:
        """Whether a move from `available` = `before` to `after` reaches a soft cap: under
        `soft_cap`, the move that takes available from above zero to zero or below (so once
        per crossing; the same crossing as `balance.depleted`, which the SQL guard of a move
        sent with the commit already treats as needing a reaction)."""
        return self.mode is PolicyMode.SOFT_CAP and after <= 0 < before

    def is_low(self, available: int) -> bool:
        return self.low_balance_threshold is not None and available < self.low_balance_threshold
