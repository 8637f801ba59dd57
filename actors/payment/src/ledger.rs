//! The ledger actor (`payment/ledger`): the payment service's reads, [`GetPayment`] and
//! [`ListPayments`]. A customer sees only their own payments (someone else's answers 404, as
//! if it did not exist); an admin sees all.

use emporium_cluster::routes_kit::{may_access, visible_owner};
use emporium_contracts::page::Page;
use emporium_contracts::payment::{GetPayment, ListPayments, PaymentView};
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use emporium_store::Database;

use crate::error::PaymentError;
use crate::store;
use crate::validation::check_id;

/// The reader of the payments.
pub struct PaymentLedger {
    database: Database,
}

impl PaymentLedger {
    /// A ledger over `database`.
    pub fn new(database: Database) -> Self {
        PaymentLedger { database }
    }
}

impl Behavior for PaymentLedger {}

impl ServiceHandler<GetPayment> for PaymentLedger {
    fn handle(&mut self, message: GetPayment, _meta: &CallMeta) -> Reply<PaymentView> {
        let database = self.database.clone();
        Box::pin(async move {
            check_id("invalid_payment_id", "a payment id", &message.id)?;
            let payment = store::payment(&database, &message.id).await.map_err(PaymentError::from)?;
            match payment {
                Some(payment) if may_access(&message.caller, &payment.user_id) => Ok(payment.view),
                _ => Err(PaymentError::NotFound(message.id).into()),
            }
        })
    }
}

impl ServiceHandler<ListPayments> for PaymentLedger {
    fn handle(&mut self, message: ListPayments, _meta: &CallMeta) -> Reply<Page<PaymentView>> {
        let database = self.database.clone();
        Box::pin(async move {
            if let Some(order_id) = &message.order_id {
                check_id("invalid_order_id", "an order id", order_id)?;
            }
            let own = visible_owner(&message.caller);
            let (payments, total) = store::list_payments(&database, own, message.order_id.as_deref(), message.page)
                .await
                .map_err(PaymentError::from)?;
            let items = payments.into_iter().map(|payment| payment.view).collect();
            Ok(Page::new(items, message.page, total))
        })
    }
}
