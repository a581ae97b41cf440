"""The `creditgate billing` commands: plans, subscriptions, packs, purchases, campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from creditgate.cli._shared import (
    CliError,
    DbOption,
    JsonOption,
    TenantOption,
    Typer,
    asset_scales,
    console,
    money,
    open_ledger,
    print_json,
    table,
    timestamp,
    units,
)

if TYPE_CHECKING:
    from pydantic import BaseModel


billing_app = Typer(
    help="Plans, subscriptions, packs, purchases, auto top-up and campaigns.",
    no_args_is_help=True,
)
plans_app = Typer(help="Plans and subscriptions.", no_args_is_help=True)
packs_app = Typer(help="Packs and purchases.", no_args_is_help=True)
campaigns_app = Typer(help="Promotional campaigns and codes.", no_args_is_help=True)
billing_app.add_typer(plans_app, name="plans")
billing_app.add_typer(packs_app, name="packs")
billing_app.add_typer(campaigns_app, name="campaigns")
invoices_app = Typer(help="Invoices: plan fees and bills of overage.", no_args_is_help=True)
overage_app = Typer(help="Overage billed in arrears.", no_args_is_help=True)
clock_app = Typer(help="A test-mode tenant's clock.", no_args_is_help=True)
billing_app.add_typer(invoices_app, name="invoices")
billing_app.add_typer(overage_app, name="overage")
billing_app.add_typer(clock_app, name="test-clock")


# Columns that are amounts in minor units of the row's asset, and money in its currency.
_UNITS = {"amount", "included", "rollover_cap", "unused", "consumed"}
_MONEY = {"fee", "price", "money", "refunded_money"}


def _show(
    value: BaseModel | Sequence[BaseModel],
    as_json: bool,
    title: str,
    columns: Sequence[str],
    scales: dict[str, int] | None = None,
) -> None:
    """JSON, or a table with amounts in the asset's units and money in its currency's."""
    if as_json:
        print_json(value)
        return
    items = list(value) if isinstance(value, Sequence) else [value]
    rows: list[list[Any]] = []
    for item in items:
        data = item.model_dump(mode="json")
        scale = (scales or {}).get(str(data.get("asset")))
        row = []
        for column in columns:
            cell = data.get(column)
            if column in _UNITS and isinstance(cell, int) and scale is not None:
                cell = units(cell, scale)
            elif column in _MONEY and cell is not None:
                cell = money(cell, data.get("currency"))
            row.append(cell)
        rows.append(row)
    table(title, columns, rows, drop=_DROP)


# What goes first when a table is too wide for the terminal.
_DROP = [
    "rollover_cap",
    "pending_plan_id",
    "provider_ref",
    "expires_after_days",
    "per_customer_limit",
    "failure_reason",
    "reason",
    "provider",
    "currency",
    "purchase_id",
    "plan_id",
    "customer",
    "lot_id",
]


@plans_app.command("create")
def plans_create(
    code: Annotated[str, typer.Argument(help="e.g. pro")],
    asset: Annotated[str, typer.Option(help="The asset of the included credit")],
    included: Annotated[int, typer.Option(help="Included credit per period, minor units")],
    fee: Annotated[str, typer.Option(help="The period fee, e.g. 20.00")],
    db: DbOption = None,
    tenant: TenantOption = None,
    currency: str = "USD",
    period: Annotated[str, typer.Option(help="monthly or yearly")] = "monthly",
    name: str = "",
    rollover_cap: Annotated[int, typer.Option(help="Most unused credit carried over")] = 0,
    overage_policy: Annotated[
        str, typer.Option(help="block, overdraft, soft_cap or allow")
    ] = "block",
    overdraft_limit: int | None = None,
    collection: Annotated[
        str | None, typer.Option(help="Who collects the fee: external, manual or stripe")
    ] = None,
    stripe_price: Annotated[str | None, typer.Option(help="The Stripe price (price_…)")] = None,
    grant_before_payment: Annotated[
        bool, typer.Option(help="Grant each period's credit before its fee is paid")
    ] = False,
    grace_days: Annotated[int, typer.Option(help="Days before unpaid credit is withheld")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Create a plan (with --stripe-price or --collection manual, creditgate collects its fee
    and grants each period's credit when it is paid)."""
    with open_ledger(db, tenant) as t:
        plan = t.create_plan(
            code,
            asset=asset,
            included=included,
            fee=fee,
            currency=currency,
            period=period,
            name=name,
            rollover_cap=rollover_cap,
            overage_policy=overage_policy,
            overdraft_limit=overdraft_limit,
            collection=collection,
            stripe_price=stripe_price,
            grant_before_payment=grant_before_payment,
            grace_days=grace_days,
        )
        scales = asset_scales(t)
    _show(plan, as_json, "plan created", _PLAN_COLUMNS, scales)


_PLAN_COLUMNS = ["id", "code", "period", "fee", "currency", "asset", "included", "rollover_cap"]


@plans_app.command("list")
def plans_list(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """The tenant's plans."""
    with open_ledger(db, tenant) as t:
        plans = t.plans()
        scales = asset_scales(t)
    _show(plans, as_json, "plans", _PLAN_COLUMNS, scales)


_SUB_COLUMNS = ["id", "customer", "plan_id", "status", "current_period_end", "pending_plan_id"]


@plans_app.command("subscribe")
def plans_subscribe(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    plan: Annotated[str, typer.Argument(help="The plan's code or id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe a customer; the first period's included credit is granted now."""
    with open_ledger(db, tenant) as t:
        sub = t.subscribe(customer, plan)
    _show(sub, as_json, "subscribed", _SUB_COLUMNS)


@plans_app.command("change")
def plans_change(
    subscription: Annotated[str, typer.Argument(help="The subscription's id (sub_…)")],
    plan: Annotated[str, typer.Argument(help="The new plan's code or id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    at: Annotated[str, typer.Option(help="now or period_end")] = "now",
    as_json: JsonOption = False,
) -> None:
    """Change a subscription's plan, now or at the end of its period."""
    with open_ledger(db, tenant) as t:
        sub = t.change_plan(subscription, plan, at=at)
    _show(sub, as_json, "plan changed", _SUB_COLUMNS)


@plans_app.command("cancel")
def plans_cancel(
    subscription: Annotated[str, typer.Argument(help="The subscription's id (sub_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    at: Annotated[str, typer.Option(help="now or period_end")] = "period_end",
    as_json: JsonOption = False,
) -> None:
    """Cancel a subscription, now or at the end of its period."""
    with open_ledger(db, tenant) as t:
        sub = t.cancel_subscription(subscription, at=at)
    _show(sub, as_json, "canceled", _SUB_COLUMNS)


@plans_app.command("renew")
def plans_renew(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """Issue every period that is due (what the worker does; safe to run any time)."""
    with open_ledger(db, tenant) as t:
        report = t.renew_due()
    _show(report, as_json, "renewals", ["renewed", "canceled", "rolled_over"])


_PACK_COLUMNS = ["id", "code", "asset", "amount", "price", "currency", "expires_after_days"]


@packs_app.command("create")
def packs_create(
    code: Annotated[str, typer.Argument(help="e.g. starter")],
    asset: Annotated[str, typer.Option(help="The asset it sells")],
    amount: Annotated[int, typer.Option(help="Minor units of the asset")],
    price: Annotated[str, typer.Option(help="e.g. 25.00")],
    db: DbOption = None,
    tenant: TenantOption = None,
    currency: str = "USD",
    name: str = "",
    expires_after_days: Annotated[int | None, typer.Option(help="Credit valid this long")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a pack."""
    with open_ledger(db, tenant) as t:
        pack = t.create_pack(
            code,
            asset=asset,
            amount=amount,
            price=price,
            currency=currency,
            name=name,
            expires_after_days=expires_after_days,
        )
        scales = asset_scales(t)
    _show(pack, as_json, "pack created", _PACK_COLUMNS, scales)


@packs_app.command("list")
def packs_list(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """Packs on sale."""
    with open_ledger(db, tenant) as t:
        packs = t.packs()
        scales = asset_scales(t)
    _show(packs, as_json, "packs", _PACK_COLUMNS, scales)


_PURCHASE_COLUMNS = ["id", "customer", "asset", "amount", "price", "currency", "status", "provider"]


@packs_app.command("buy")
def packs_buy(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    pack: Annotated[str, typer.Argument(help="The pack's code or id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a manual invoice for a pack (pending until marked paid)."""
    with open_ledger(db, tenant) as t:
        purchase = t.buy(customer, pack=pack)
        scales = asset_scales(t)
    _show(purchase, as_json, "purchase", _PURCHASE_COLUMNS, scales)


@packs_app.command("mark-paid")
def packs_mark_paid(
    purchase: Annotated[str, typer.Argument(help="The purchase's id (pur_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a manual invoice as paid: its credit is granted."""
    with open_ledger(db, tenant) as t:
        done = t.mark_paid(purchase)
        scales = asset_scales(t)
    _show(done, as_json, "purchase", [*_PURCHASE_COLUMNS, "lot_id"], scales)


@packs_app.command("mark-failed")
def packs_mark_failed(
    purchase: Annotated[str, typer.Argument(help="The purchase's id (pur_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    reason: str = "",
    as_json: JsonOption = False,
) -> None:
    """Record a manual invoice as failed: nothing is granted."""
    with open_ledger(db, tenant) as t:
        done = t.mark_failed(purchase, reason=reason)
        scales = asset_scales(t)
    _show(done, as_json, "purchase", [*_PURCHASE_COLUMNS, "failure_reason"], scales)


@packs_app.command("purchases")
def packs_purchases(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A customer's purchases, newest first."""
    with open_ledger(db, tenant) as t:
        found = t.purchases(customer)
        scales = asset_scales(t)
    _show(
        found, as_json, f"purchases of {customer}", [*_PURCHASE_COLUMNS, "refunded_money"], scales
    )


_REFUND_COLUMNS = [
    "id",
    "purchase_id",
    "amount",
    "unused",
    "consumed",
    "money",
    "currency",
    "status",
    "provider_ref",
]


@packs_app.command("refund")
def packs_refund(
    purchase: Annotated[str, typer.Argument(help="The purchase's id (pur_…)")],
    reason: Annotated[str, typer.Option(help="Why it is refunded (required)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    amount: Annotated[
        int | None, typer.Option(help="Credits to refund, minor units (default: all unused)")
    ] = None,
    include_consumed: Annotated[
        bool,
        typer.Option(
            "--include-consumed",
            help="Refund credit already used too: it is debited from the wallet again",
        ),
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes the command safe to run again")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Refund a paid purchase: take its credit back and pay its money back through its
    provider (a manual invoice: you pay it back; the refund records it)."""
    with open_ledger(db, tenant) as t:
        refund = t.refund_purchase(
            purchase,
            reason=reason,
            amount=amount,
            include_consumed=include_consumed,
            idempotency_key=idempotency_key,
        )
        scales = asset_scales(t)
    _show(refund, as_json, "refund", [*_REFUND_COLUMNS, "failure_reason"], scales)


@packs_app.command("refunds")
def packs_refunds(
    purchase: Annotated[str, typer.Argument(help="The purchase's id (pur_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A purchase's refunds, oldest first."""
    with open_ledger(db, tenant) as t:
        found = t.purchase_refunds(purchase)
        scales = asset_scales(t)
    _show(found, as_json, f"refunds of {purchase}", [*_REFUND_COLUMNS, "reason"], scales)


_CAMPAIGN_COLUMNS = ["id", "code", "asset", "amount", "per_customer_limit", "redemptions"]


@campaigns_app.command("create")
def campaigns_create(
    code: Annotated[str, typer.Argument(help="The code customers type")],
    asset: Annotated[str, typer.Option(help="The asset it grants")],
    amount: Annotated[int, typer.Option(help="Minor units per redemption")],
    db: DbOption = None,
    tenant: TenantOption = None,
    per_customer_limit: int = 1,
    max_redemptions: int | None = None,
    expires_at: Annotated[str | None, typer.Option(help="ISO 8601, with a zone")] = None,
    credit_valid_days: int | None = None,
    as_json: JsonOption = False,
) -> None:
    """Create a campaign."""
    with open_ledger(db, tenant) as t:
        campaign = t.create_campaign(
            code,
            asset=asset,
            amount=amount,
            per_customer_limit=per_customer_limit,
            max_redemptions=max_redemptions,
            expires_at=timestamp(expires_at, "--expires-at"),
            credit_valid_days=credit_valid_days,
        )
        scales = asset_scales(t)
    _show(campaign, as_json, "campaign created", _CAMPAIGN_COLUMNS, scales)


@campaigns_app.command("list")
def campaigns_list(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """The tenant's campaigns."""
    with open_ledger(db, tenant) as t:
        found = t.campaigns()
        scales = asset_scales(t)
    _show(found, as_json, "campaigns", _CAMPAIGN_COLUMNS, scales)


@campaigns_app.command("redeem")
def campaigns_redeem(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    code: Annotated[str, typer.Argument(help="The campaign's code")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Redeem a code for a customer."""
    with open_ledger(db, tenant) as t:
        redemption = t.redeem(customer, code)
    _show(redemption, as_json, "redeemed", ["campaign_id", "code", "customer", "seq"])


@billing_app.command("consumption-order")
def consumption_order(
    db: DbOption = None,
    tenant: TenantOption = None,
    kind: Annotated[str | None, typer.Option(help="A lot kind to change")] = None,
    priority: Annotated[int | None, typer.Option(help="Its new default priority")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show (or, with --kind and --priority, change) the default priority per lot kind."""
    if (kind is None) != (priority is None):
        raise CliError("give --kind and --priority together")
    with open_ledger(db, tenant) as t:
        order = (
            t.set_kind_priority(kind, priority)
            if kind is not None and priority is not None
            else t.consumption_order()
        )
    _show(order.data, as_json, "consumption order (lowest first)", ["kind", "priority"])


_INVOICE_COLUMNS = ["id", "kind", "status", "amount", "currency", "period_index", "debt", "pay_url"]


@invoices_app.command("list")
def invoices_list(
    customer: Annotated[str, typer.Argument(help="The customer's id")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """A customer's plan fees and bills of overage, newest first."""
    with open_ledger(db, tenant) as t:
        found = t.invoices(customer)
    _show(found, as_json, f"invoices of {customer}", _INVOICE_COLUMNS)


@invoices_app.command("mark-paid")
def invoices_mark_paid(
    invoice: Annotated[str, typer.Argument(help="The plan invoice's id (inv_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a manual plan invoice as paid: the period's credit is granted."""
    with open_ledger(db, tenant) as t:
        done = t.mark_invoice_paid(invoice)
    _show(done, as_json, "invoice", _INVOICE_COLUMNS)


@invoices_app.command("mark-failed")
def invoices_mark_failed(
    invoice: Annotated[str, typer.Argument(help="The plan invoice's id (inv_…)")],
    db: DbOption = None,
    tenant: TenantOption = None,
    reason: str = "",
    as_json: JsonOption = False,
) -> None:
    """Record a failed payment of a manual plan invoice (the subscription is past due)."""
    with open_ledger(db, tenant) as t:
        done = t.mark_invoice_failed(invoice, reason=reason)
    _show(done, as_json, "invoice", [*_INVOICE_COLUMNS, "failure_reason"])


@overage_app.command("set")
def overage_set(
    asset: Annotated[str, typer.Argument(help="The asset whose debt is billed")],
    price: Annotated[str, typer.Option(help="Money per whole unit of debt, e.g. 0.05")],
    db: DbOption = None,
    tenant: TenantOption = None,
    currency: str = "USD",
    provider: Annotated[str, typer.Option(help="manual or stripe")] = "manual",
    threshold: Annotated[int | None, typer.Option(help="Bill at once above this debt")] = None,
    on_failure: Annotated[str, typer.Option(help="keep or block")] = "keep",
    return_url: Annotated[str | None, typer.Option(help="Where a pay link returns")] = None,
    as_json: JsonOption = False,
) -> None:
    """Set the price and rules that bill an asset's debt in arrears."""
    with open_ledger(db, tenant) as t:
        setting = t.set_overage(
            asset,
            price=price,
            currency=currency,
            provider=provider,
            threshold=threshold,
            on_failure=on_failure,
            return_url=return_url,
        )
    _show(setting, as_json, "overage", ["asset", "price", "currency", "provider", "on_failure"])


@overage_app.command("bill")
def overage_bill(
    db: DbOption = None, tenant: TenantOption = None, as_json: JsonOption = False
) -> None:
    """Bill the debt that is due and send the bills (what the worker does; safe any time)."""
    with open_ledger(db, tenant) as t:
        report = t.bill_overage()
    _show(report, as_json, "overage", ["billed", "sent"])


@clock_app.command("advance")
def clock_advance(
    to: Annotated[
        str, typer.Argument(help="The tenant's new time, ISO 8601 (e.g. 2027-02-01T00:00Z)")
    ],
    db: DbOption = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a test-mode tenant's clock forward and run what falls due by then."""
    when = timestamp(to, "to")
    assert when is not None
    with open_ledger(db, tenant) as t:
        moved = t.advance_clock(when)
    if as_json:
        print_json(moved)
        return
    renewals, billed = moved.billing.renewals, moved.billing.overage
    console.print(f"the tenant's clock is now {moved.now.isoformat()}")
    console.print(
        f"renewed {renewals.renewed}, withheld {renewals.withheld}, overage billed "
        f"{billed.billed}, lots expired {moved.sweeps.lots_expired}"
    )
