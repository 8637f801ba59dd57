//! The payment provider: who actually moves the money. [`PaymentProvider`] is the adapter a
//! real processor (Stripe, Adyen, ...) would implement; [`SimulatedCardProcessor`] is the one
//! built in, with the test tokens of API.md and deterministic outcomes.
//!
//! **Exactly once, and what a real provider adds.** The payment service charges inside the
//! transaction in which it records the payment, the outbox event and the inbox row (see
//! [`crate::charger`]), so the service's own effects happen once per order. A real provider's
//! charge is a call to another system and is not part of that transaction: if the transaction
//! fails after the provider charged (a crash, a lost connection at commit), the event comes
//! back and the order is charged again. A real adapter must therefore send an idempotency key
//! with every charge and the provider must answer a repeated key with the first outcome
//! instead of charging twice; the order id is that key (one payment per order). The simulated
//! processor has no side effect to repeat, so it needs none.

use emporium_contracts::money::Money;
use emporium_contracts::payment::{
    CARD_DECLINED, INSUFFICIENT_FUNDS, INVALID_TOKEN, METHOD_CARD, TOKEN_CHARGE_DECLINED, TOKEN_INSUFFICIENT_FUNDS,
    TOKEN_VISA, UNSUPPORTED_METHOD,
};
use futures::future::BoxFuture;

/// What the provider decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOutcome {
    /// The money was taken; `provider_ref` names the charge at the provider.
    Charged {
        /// The provider's reference of the charge.
        provider_ref: String,
    },
    /// The charge was refused for good; `reason` is a stable snake_case code
    /// (`card_declined`, `insufficient_funds`, `invalid_token`, `unsupported_method`).
    Declined {
        /// Why.
        reason: String,
        /// The provider's reference of the refused attempt, when it gives one.
        provider_ref: Option<String>,
    },
}

/// The provider could not say: unreachable, timed out, answered nonsense. The outcome is
/// unknown, so the charge is tried again later with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment provider unavailable: {0}")]
pub struct ProviderError(pub String);

/// A payment provider adapter.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges `amount` of `currency` for `order_id` with the payment `method` and the
    /// provider's card `token`. `order_id` is also the idempotency key: charging the same
    /// order again must answer the first outcome and move no money (see the module docs).
    fn charge<'a>(
        &'a self,
        order_id: &'a str,
        amount: Money,
        currency: &'a str,
        method: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<ProviderOutcome, ProviderError>>;

    /// A short name for logs (`simulated`).
    fn name(&self) -> &'static str;
}

/// The built-in simulated card processor. Outcomes depend only on the method and the token:
/// `tok_visa` is charged, `tok_chargeDeclined` is declined (`card_declined`),
/// `tok_insufficientFunds` is declined (`insufficient_funds`), any other token is declined
/// (`invalid_token`); any method but `card` is declined (`unsupported_method`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimulatedCardProcessor;

impl SimulatedCardProcessor {
    /// What the simulated processor decides for `method` and `token`.
    pub fn decide(method: &str, token: &str) -> ProviderOutcome {
        let declined = |reason: &str| ProviderOutcome::Declined { reason: reason.to_string(), provider_ref: None };
        if method != METHOD_CARD {
            return declined(UNSUPPORTED_METHOD);
        }
        match token {
            TOKEN_VISA => {
                ProviderOutcome::Charged { provider_ref: format!("sim_ch_{}", uuid::Uuid::new_v4().simple()) }
            }
            TOKEN_CHARGE_DECLINED => declined(CARD_DECLINED),
            TOKEN_INSUFFICIENT_FUNDS => declined(INSUFFICIENT_FUNDS),
            _ => declined(INVALID_TOKEN),
        }
    }
}

impl PaymentProvider for SimulatedCardProcessor {
    fn charge<'a>(
        &'a self,
        _order_id: &'a str,
        _amount: Money,
        _currency: &'a str,
        method: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<ProviderOutcome, ProviderError>> {
        Box::pin(async move { Ok(Self::decide(method, token)) })
    }

    fn name(&self) -> &'static str {
        "simulated"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(outcome: ProviderOutcome) -> String {
        match outcome {
            ProviderOutcome::Declined { reason, .. } => reason,
            ProviderOutcome::Charged { provider_ref } => panic!("charged: {provider_ref}"),
        }
    }

    #[tokio::test]
    async fn the_test_tokens_decide_the_outcome() {
        let processor = SimulatedCardProcessor;
        let amount = Money::from_minor_units(1999, 2);
        let charge = |method: &'static str, token: &'static str| processor.charge("o1", amount, "USD", method, token);
        match charge("card", "tok_visa").await.unwrap() {
            ProviderOutcome::Charged { provider_ref } => {
                assert!(provider_ref.starts_with("sim_ch_") && provider_ref.len() == 39, "{provider_ref}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(reason(charge("card", "tok_chargeDeclined").await.unwrap()), "card_declined");
        assert_eq!(reason(charge("card", "tok_insufficientFunds").await.unwrap()), "insufficient_funds");
        assert_eq!(reason(charge("card", "tok_unknown").await.unwrap()), "invalid_token");
        assert_eq!(reason(charge("card", "").await.unwrap()), "invalid_token");
        assert_eq!(reason(charge("paypal", "tok_visa").await.unwrap()), "unsupported_method");
    }
}
