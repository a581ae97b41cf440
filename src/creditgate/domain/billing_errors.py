"""Named failures of plans, purchases, payment providers and campaigns."""

from __future__ import annotations

from creditgate.domain.errors import (
    Conflict,
    CreditgateError,
    InvalidInput,
    NotFound,
    UpstreamFailed,
)


class UnknownPlan(NotFound):
    code = "unknown_plan"


class UnknownSubscription(NotFound):
    code = "unknown_subscription"


class UnknownPack(NotFound):
    code = "unknown_pack"


class UnknownPurchase(NotFound):
    code = "unknown_purchase"


class UnknownCampaign(NotFound):
    code = "unknown_campaign"


class NoExchangeRate(InvalidInput):
    """Money buys an asset other than its own currency, and the tenant set no rate for it."""

    code = "no_exchange_rate"


class AlreadySubscribed(Conflict):
    code = "already_subscribed"


class SubscriptionNotActive(Conflict):
    code = "subscription_not_active"


class PackNotActive(Conflict):
    code = "pack_not_active"


class PurchaseNotPending(Conflict):
    """The purchase was already paid, failed or refunded; it changes state once."""

    code = "purchase_not_pending"


class ProviderNotConfigured(Conflict):
    code = "provider_not_configured"


class NoPaymentMethod(Conflict):
    code = "no_payment_method"


class PaymentProviderError(UpstreamFailed):
    """The payment provider refused or could not be reached; nothing was granted."""

    code = "payment_provider_error"


class InvalidSignature(CreditgateError):
    """A provider webhook whose signature does not verify: it is not acted on."""

    code = "invalid_signature"


class CampaignExpired(Conflict):
    code = "campaign_expired"


class CampaignLimitReached(Conflict):
    """The customer has redeemed this code as often as the campaign allows."""

    code = "campaign_limit_reached"


class CampaignExhausted(Conflict):
    """The campaign's total redemptions are used up."""

    code = "campaign_exhausted"


class UnknownRefund(NotFound):
    code = "unknown_refund"


class PurchaseNotRefundable(Conflict):
    """Only a paid purchase is refunded, through a payment the provider knows of."""

    code = "purchase_not_refundable"


class RefundPending(Conflict):
    """An earlier refund of the purchase still waits for the provider's answer."""

    code = "refund_pending"


class RefundNotCovered(Conflict):
    """Refunding consumed credit would take the wallet past what its policy allows."""

    code = "refund_not_covered"


class UnknownInvoice(NotFound):
    code = "unknown_invoice"


class PeriodNotIssued(Conflict):
    """A provider reports a payment for a period that has not started here yet."""

    code = "period_not_issued"


class NotOverage(Conflict):
    """Writing off a purchase that is not a bill of overage, or one already paid."""

    code = "not_writable_off"
