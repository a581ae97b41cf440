/**
 * The API's requests and answers, from the types generated off the server's OpenAPI
 * document (src/schema.ts), with their numbers as this client reads and writes them.
 *
 * Every number in an answer is a JSON integer (amounts in an asset's minor unit, counts,
 * versions; anything with a fraction is a decimal string), so every number of an answer is
 * read as a `bigint`, exactly, whatever its size. A request's integers may be a `number` (a
 * safe integer) or a `bigint`.
 */

import type { components } from "./schema.js";

type Schemas = components["schemas"];

/** An answer's shape: each `number` of the schema is a `bigint`. */
export type Answer<T> = T extends number
  ? bigint
  : T extends readonly (infer U)[]
    ? Answer<U>[]
    : T extends object
      ? { [K in keyof T]: Answer<T[K]> }
      : T;

/** A request's shape: each `number` of the schema may be a `number` or a `bigint`. */
export type Input<T> = T extends number
  ? number | bigint
  : T extends readonly (infer U)[]
    ? Input<U>[]
    : T extends object
      ? { [K in keyof T]: Input<T[K]> }
      : T;

// Answers
export type Asset = Answer<Schemas["AssetInfo"]>;
export type Customer = Answer<Schemas["Customer"]>;
export type Wallet = Answer<Schemas["Wallet"]>;
export type AssetBalance = Answer<Schemas["AssetBalance"]>;
export type Policy = Answer<Schemas["Policy"]>;
export type Lot = Answer<Schemas["Lot"]>;
export type Authorization = Answer<Schemas["Authorization"]>;
export type Settlement = Answer<Schemas["Settlement"]>;
export type Charge = Answer<Schemas["Charge"]>;
export type BatchItem = Answer<Schemas["BatchItem"]>;
export type Refund = Answer<Schemas["Refund"]>;
export type PriceQuote = Answer<Schemas["PriceQuote"]>;
export type PublishedRateCard = Answer<Schemas["PublishedRateCard"]>;
export type RateCardVersion = Answer<Schemas["RateCardVersion"]>;
export type PortalSession = Answer<Schemas["PortalSession"]>;
export type LedgerPage = Answer<Schemas["LedgerPage"]>;
export type LedgerTransaction = Answer<Schemas["LedgerTransaction"]>;
export type Member = Answer<Schemas["Member"]>;
export type Budget = Answer<Schemas["Budget"]>;
export type BudgetPeriod = Answer<Schemas["BudgetPeriod"]>;
export type MemberUsage = Answer<Schemas["MemberUsage"]>;

// Requests
export type NewAsset = Input<Schemas["NewAsset"]>;
export type NewCustomer = Input<Schemas["NewCustomer"]>;
export type PolicyChange = Input<Schemas["PolicyChange"]>;
export type NewGrant = Input<Schemas["NewGrant"]>;
export type GrantVoid = Input<Schemas["GrantVoid"]>;
export type NewAuthorization = Input<Schemas["NewAuthorization"]>;
export type SettlementRequest = Input<Schemas["SettlementRequest"]>;
export type NewCharge = Input<Schemas["NewCharge"]>;
/** A charge of a batch; `idempotency_key` defaults to the batch's key and the item's index. */
export type UsageEvent = Omit<Input<Schemas["UsageEvent"]>, "idempotency_key"> & {
  idempotency_key?: string;
};
export type NewRefund = Input<Schemas["NewRefund"]>;
export type QuoteRequest = Input<Schemas["QuoteRequest"]>;
export type NewRateCard = Input<Schemas["NewRateCard"]>;
export type NewPortalSession = Input<Schemas["NewPortalSession"]>;
export type NewMember = Input<Schemas["NewMember"]>;
export type MemberChange = Input<Schemas["MemberChange"]>;
export type BudgetSpec = Input<Schemas["BudgetSpec"]>;

export type { components, paths, operations } from "./schema.js";
