"""Named failures of plans, purchases, payment providers and campaigns."""

from __future__ import annotations

from creditgate.domain.errors import CreditgateError, NotFound


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


class NoExchangeRate(CreditgateError):
    """Money buys an asset other than its own currency, and the tenant set no rate for it."""

    code = "no_exchange_rate"
    status = 422


class AlreadySubscribed(CreditgateError):
    code = "already_subscribed"
    status = 409


class SubscriptionNotActive(CreditgateError):
    code = "subscription_not_active"
    status = 409


class PackNotActive(CreditgateError):
    code = "pack_not_active"
    status = 409


class PurchaseNotPending(CreditgateError):
    """The purchase was already paid, failed or refunded; it changes state once."""

    code = "purchase_not_pending"
    status = 409


class ProviderNotConfigured(CreditgateError):
    code = "provider_not_configured"
    status = 409


class NoPaymentMethod(CreditgateError):
    code = "no_payment_method"
    status = 409


class PaymentProviderError(CreditgateError):
    """The payment provider refused or could not be reached; nothing was granted."""

    code = "payment_provider_error"
    status = 502


class InvalidSignature(CreditgateError):
    """A provider webhook whose signature does not verify: it is not acted on."""

    code = "invalid_signature"
    status = 400


class CampaignExpired(CreditgateError):
    code = "campaign_expired"
    status = 409


class CampaignLimitReached(CreditgateError):
    """The customer has redeemed this code as often as the campaign allows."""

    code = "campaign_limit_reached"
    status = 409


class CampaignExhausted(CreditgateError):
    """The campaign's total redemptions are used up."""

    code = "campaign_exhausted"
    status = 409


class UnknownRefund(NotFound):
    code = "unknown_refund"


class PurchaseNotRefundable(CreditgateError):
    """Only a paid purchase is refunded, through a payment the provider knows of."""

    code = "purchase_not_refundable"
    status = 409


class RefundPending(CreditgateError):
    """An earlier refund of the purchase still waits for the provider's answer."""

    code = "refund_pending"
    status = 409


class RefundNotCovered(CreditgateError):
    """Refunding consumed credit would take the wallet past what its policy allows."""

    code = "refund_not_covered"
    status = 409
