//! The catalog actor (`product/catalog`): every product message. Handlers check their input,
//! then run the store call in a future that owns a clone of the store, so reads are served
//! concurrently; the store's unique index decides duplicate SKUs.

use emporium_contracts::identity::Caller;
use emporium_contracts::page::Page;
use emporium_contracts::product::{
    CreateProduct, DeleteProduct, GetProduct, GetProducts, ListProducts, PriceSnapshot, ProductView, ProductsBySku,
    UpdateProduct,
};
use emporium_runtime::{Behavior, CallMeta, Reply, ServiceHandler};
use tracing::Instrument;

use crate::error::ProductError;
use crate::store::ProductStore;
use crate::validation::{check_list, check_product, check_skus, is_valid_sku};

/// The catalog.
pub struct Catalog {
    store: ProductStore,
}

impl Catalog {
    /// A catalog kept in `store`.
    pub fn new(store: ProductStore) -> Self {
        Catalog { store }
    }
}

impl Behavior for Catalog {}

/// Writes need an admin, wherever the message came from (the gateway checks it too).
fn check_admin(caller: &Caller) -> Result<(), ProductError> {
    if caller.is_admin() { Ok(()) } else { Err(ProductError::Forbidden) }
}

impl ServiceHandler<CreateProduct> for Catalog {
    fn handle(&mut self, message: CreateProduct, _meta: &CallMeta) -> Reply<ProductView> {
        let store = self.store.clone();
        let span = tracing::debug_span!("create_product", sku = %message.request.sku, store = store.kind());
        Box::pin(async move {
            check_admin(&message.caller)?;
            let draft = check_product(message.request)?;
            let product = store.insert(&draft).await?;
            tracing::info!(id = %product.id, sku = %product.sku, actor = %message.caller.user_id, "product created");
            Ok(product)
        }
        .instrument(span))
    }
}

impl ServiceHandler<UpdateProduct> for Catalog {
    fn handle(&mut self, message: UpdateProduct, _meta: &CallMeta) -> Reply<ProductView> {
        let store = self.store.clone();
        let span = tracing::debug_span!("update_product", id = %message.id, store = store.kind());
        Box::pin(async move {
            check_admin(&message.caller)?;
            let draft = check_product(message.request)?;
            match store.replace(&message.id, &draft).await? {
                Some(product) => {
                    tracing::info!(id = %product.id, sku = %product.sku, actor = %message.caller.user_id, "product updated");
                    Ok(product)
                }
                None => Err(ProductError::NotFound(message.id).into()),
            }
        }
        .instrument(span))
    }
}

impl ServiceHandler<DeleteProduct> for Catalog {
    fn handle(&mut self, message: DeleteProduct, _meta: &CallMeta) -> Reply<()> {
        let store = self.store.clone();
        let span = tracing::debug_span!("delete_product", id = %message.id, store = store.kind());
        Box::pin(
            async move {
                check_admin(&message.caller)?;
                if store.delete(&message.id).await? {
                    tracing::info!(id = %message.id, actor = %message.caller.user_id, "product deleted");
                    Ok(())
                } else {
                    Err(ProductError::NotFound(message.id).into())
                }
            }
            .instrument(span),
        )
    }
}

impl ServiceHandler<GetProduct> for Catalog {
    fn handle(&mut self, message: GetProduct, _meta: &CallMeta) -> Reply<ProductView> {
        let store = self.store.clone();
        let span = tracing::debug_span!("get_product", id = %message.id, store = store.kind());
        Box::pin(
            async move {
                match store.get(&message.id).await? {
                    Some(product) => Ok(product),
                    None => Err(ProductError::NotFound(message.id).into()),
                }
            }
            .instrument(span),
        )
    }
}

impl ServiceHandler<ListProducts> for Catalog {
    fn handle(&mut self, message: ListProducts, _meta: &CallMeta) -> Reply<Page<ProductView>> {
        let store = self.store.clone();
        let span = tracing::debug_span!("list_products", store = store.kind());
        Box::pin(
            async move {
                let Some(query) = check_list(message.filter, message.sort, message.page)? else {
                    // A text query without a single word matches nothing (never everything).
                    return Ok(Page::new(Vec::new(), message.page, 0));
                };
                let (items, total) = store.list(&query).await?;
                Ok(Page::new(items, query.page, total))
            }
            .instrument(span),
        )
    }
}

impl ServiceHandler<GetProducts> for Catalog {
    fn handle(&mut self, message: GetProducts, _meta: &CallMeta) -> Reply<ProductsBySku> {
        let store = self.store.clone();
        let span = tracing::debug_span!("get_products", skus = message.skus.len(), store = store.kind());
        Box::pin(
            async move {
                let skus = check_skus(&message.skus)?;
                let well_formed: Vec<String> = skus.iter().filter(|sku| is_valid_sku(sku)).cloned().collect();
                let products = store.by_skus(&well_formed).await?;
                let mut found = Vec::with_capacity(products.len());
                let mut missing = Vec::new();
                for sku in skus {
                    match products.iter().find(|product| product.sku == sku) {
                        Some(product) => found.push(PriceSnapshot {
                            sku: product.sku.clone(),
                            name: product.name.clone(),
                            price: product.price.clone(),
                            currency: product.currency.clone(),
                        }),
                        // Malformed SKUs land here too: no product has them.
                        None => missing.push(sku),
                    }
                }
                Ok(ProductsBySku { found, missing })
            }
            .instrument(span),
        )
    }
}
