//! The MongoDB catalog (production): collection `products`, one document per product:
//! `{_id: ObjectId, sku, name, description, price: Decimal128, currency, category,
//! attributes: {...}, createdAt: Date, updatedAt: Date}`.
//!
//! Indexes, created at start (idempotent): `sku_unique` (unique: a duplicate SKU is error
//! 11000, answered as `sku_taken`; never check-then-insert), `category_price`, `price`, `name`,
//! `created_at`, and the text index `name_description_text` on name and description with
//! `default_language: "none"` (no stemming, no stop words: whole words, as the embedded store).
//!
//! Every filter and update document is built here from typed values: strings are only ever
//! values, never keys, so no client input can become an operator or a field path. No
//! transactions (a standalone `mongod` refuses them): each write is one document.
//!
//! A `$text` query is counted with a `find` of the ids rather than `count_documents`, which runs
//! an aggregation that the MongoDB-compatible test server refuses with `$text` (MongoDB takes
//! both).

use std::str::FromStr;

use anyhow::Context;
use emporium_contracts::money::Money;
use emporium_contracts::product::{ProductSort, ProductView};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, DateTime as BsonDateTime, Decimal128, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind as MongoErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database as MongoDatabase, IndexModel};

use super::{
    CONNECT_TIMEOUT, ProductDraft, ProductQuery, ProductRepository, is_product_id, now_millis, redact_url,
    scaled_decimal_string, time_of_millis,
};
use crate::error::ProductError;

/// The database used when the URL names none.
pub const DEFAULT_DATABASE: &str = "emporium";
/// The collection of the catalog.
pub const COLLECTION: &str = "products";
/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// The catalog in MongoDB.
pub struct MongoProductStore {
    database: MongoDatabase,
    products: Collection<Document>,
}

impl MongoProductStore {
    /// Connects to `url`, checks that the server answers within [`CONNECT_TIMEOUT`], and
    /// creates the indexes. The database is the URL's path (`mongodb://host/shop`), else
    /// [`DEFAULT_DATABASE`].
    pub async fn connect(url: &str) -> anyhow::Result<MongoProductStore> {
        let shown = redact_url(url);
        let mut options = ClientOptions::parse(url)
            .await
            .with_context(|| format!("EMPORIUM_MONGODB_URL ({shown}) is not a usable MongoDB URL"))?;
        options.server_selection_timeout = Some(CONNECT_TIMEOUT);
        options.connect_timeout = Some(CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "emporium-product".to_string());
        let database_name = options.default_database.clone().unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let client = Client::with_options(options).with_context(|| format!("MongoDB client for {shown}"))?;
        let database = client.database(&database_name);
        database.run_command(doc! {"ping": 1}).await.with_context(|| {
            format!("EMPORIUM_MONGODB_URL is set but MongoDB at {shown} cannot be reached (waited {CONNECT_TIMEOUT:?})")
        })?;
        let products = database.collection::<Document>(COLLECTION);
        create_indexes(&products)
            .await
            .with_context(|| format!("cannot create the indexes of {database_name}.{COLLECTION} at {shown}"))?;
        tracing::info!(url = %shown, database = %database_name, "product catalog on MongoDB");
        Ok(MongoProductStore { database, products })
    }

    async fn count_matching(&self, filter: Document, is_text_search: bool) -> Result<u64, ProductError> {
        if !is_text_search {
            return Ok(self.products.count_documents(filter).await?);
        }
        let mut ids = self.products.find(filter).projection(doc! {"_id": 1}).await?;
        let mut total = 0;
        while ids.try_next().await?.is_some() {
            total += 1;
        }
        Ok(total)
    }
}

async fn create_indexes(products: &Collection<Document>) -> Result<(), MongoError> {
    let named = |name: &str| IndexOptions::builder().name(name.to_string()).build();
    let indexes = [
        IndexModel::builder()
            .keys(doc! {"sku": 1})
            .options(IndexOptions::builder().name("sku_unique".to_string()).unique(true).build())
            .build(),
        IndexModel::builder().keys(doc! {"category": 1, "price": 1}).options(named("category_price")).build(),
        IndexModel::builder().keys(doc! {"price": 1}).options(named("price")).build(),
        IndexModel::builder().keys(doc! {"name": 1}).options(named("name")).build(),
        IndexModel::builder().keys(doc! {"createdAt": -1}).options(named("created_at")).build(),
        IndexModel::builder()
            .keys(doc! {"name": "text", "description": "text"})
            .options(
                IndexOptions::builder()
                    .name("name_description_text".to_string())
                    .default_language("none".to_string())
                    .build(),
            )
            .build(),
    ];
    products.create_indexes(indexes).await?;
    Ok(())
}

fn is_duplicate_key(error: &MongoError) -> bool {
    match &*error.kind {
        MongoErrorKind::Write(WriteFailure::WriteError(write_error)) => write_error.code == DUPLICATE_KEY,
        MongoErrorKind::InsertMany(insert_many) => {
            insert_many.write_errors.iter().flatten().any(|write_error| write_error.code == DUPLICATE_KEY)
        }
        MongoErrorKind::Command(command_error) => command_error.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// The index of the first insert that hit the unique index, in an `insert_many`.
fn first_duplicate_index(error: &MongoError) -> Option<usize> {
    match &*error.kind {
        MongoErrorKind::InsertMany(insert_many) => insert_many
            .write_errors
            .iter()
            .flatten()
            .find(|write_error| write_error.code == DUPLICATE_KEY)
            .map(|write_error| write_error.index),
        _ => None,
    }
}

fn decimal(text: &str) -> Result<Decimal128, ProductError> {
    Decimal128::from_str(text).map_err(|error| ProductError::Unexpected(anyhow::anyhow!("decimal {text}: {error}")))
}

fn attributes_document(attributes: &std::collections::BTreeMap<String, serde_json::Value>) -> Document {
    let mut document = Document::new();
    for (key, value) in attributes {
        let value = match value {
            serde_json::Value::String(text) => Bson::String(text.clone()),
            serde_json::Value::Bool(flag) => Bson::Boolean(*flag),
            serde_json::Value::Number(number) => match number.as_i64() {
                Some(integer) => Bson::Int64(integer),
                None => Bson::Double(number.as_f64().unwrap_or_default()),
            },
            // Validation lets only strings, numbers and booleans through.
            _ => continue,
        };
        document.insert(key.as_str(), value);
    }
    document
}

fn product_fields(draft: &ProductDraft) -> Result<Document, ProductError> {
    Ok(doc! {
        "sku": draft.sku.as_str(),
        "name": draft.name.as_str(),
        "description": draft.description.as_str(),
        "price": decimal(&draft.price.to_string())?,
        "currency": draft.currency.as_str(),
        "category": draft.category.as_str(),
        "attributes": attributes_document(&draft.attributes),
    })
}

fn new_document(id: ObjectId, draft: &ProductDraft, now: i64) -> Result<Document, ProductError> {
    let mut document = doc! {"_id": id};
    document.extend(product_fields(draft)?);
    document.insert("createdAt", BsonDateTime::from_millis(now));
    document.insert("updatedAt", BsonDateTime::from_millis(now));
    Ok(document)
}

fn view_of(document: &Document) -> Result<ProductView, ProductError> {
    let corrupt = |field: &str, error: &dyn std::fmt::Display| {
        ProductError::Unexpected(anyhow::anyhow!("stored product {:?}: field {field}: {error}", document.get("_id")))
    };
    let text = |field: &str| document.get_str(field).map(str::to_string).map_err(|error| corrupt(field, &error));
    let time = |field: &str| {
        document
            .get_datetime(field)
            .map(|at| time_of_millis(at.timestamp_millis()))
            .map_err(|error| corrupt(field, &error))
    };
    let id = document.get_object_id("_id").map_err(|error| corrupt("_id", &error))?.to_hex();
    let currency = text("currency")?;
    let price = match document.get("price") {
        Some(Bson::Decimal128(price)) => {
            Money::parse(&price.to_string(), &currency).map_err(|error| corrupt("price", &error.message))?.to_string()
        }
        other => return Err(corrupt("price", &format!("not a Decimal128: {other:?}"))),
    };
    let mut attributes = std::collections::BTreeMap::new();
    if let Ok(stored) = document.get_document("attributes") {
        for (key, value) in stored {
            let value = match value {
                Bson::String(text) => serde_json::Value::String(text.clone()),
                Bson::Boolean(flag) => serde_json::Value::Bool(*flag),
                Bson::Int32(integer) => serde_json::Value::from(*integer),
                Bson::Int64(integer) => serde_json::Value::from(*integer),
                Bson::Double(number) => serde_json::Number::from_f64(*number)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| corrupt("attributes", &format!("{key} is not a finite number")))?,
                other => {
                    return Err(corrupt(
                        "attributes",
                        &format!("{key} has a value of type {:?}", other.element_type()),
                    ));
                }
            };
            attributes.insert(key.clone(), value);
        }
    }
    Ok(ProductView {
        id,
        sku: text("sku")?,
        name: text("name")?,
        description: text("description")?,
        price,
        currency,
        category: text("category")?,
        attributes,
        created_at: time("createdAt")?,
        updated_at: time("updatedAt")?,
    })
}

/// The filter of a list query, from its typed values only.
fn filter_of(query: &ProductQuery) -> Result<Document, ProductError> {
    let mut filter = Document::new();
    if let Some(category) = &query.category {
        filter.insert("category", Bson::String(category.clone()));
    }
    if !query.words.is_empty() {
        // Each word a quoted phrase: MongoDB ANDs phrases (bare words would be ORed). The words
        // are letters, digits and `_` only; quotes are dropped all the same.
        let search: Vec<String> = query.words.iter().map(|word| format!("\"{}\"", word.replace('"', ""))).collect();
        filter.insert("$text", doc! {"$search": search.join(" ")});
    }
    let mut price = Document::new();
    if let Some(min) = query.min_price {
        price.insert("$gte", decimal(&scaled_decimal_string(min))?);
    }
    if let Some(max) = query.max_price {
        price.insert("$lte", decimal(&scaled_decimal_string(max))?);
    }
    if !price.is_empty() {
        filter.insert("price", price);
    }
    Ok(filter)
}

fn sort_of(sort: ProductSort) -> Document {
    match sort {
        ProductSort::PriceAsc => doc! {"price": 1, "_id": 1},
        ProductSort::PriceDesc => doc! {"price": -1, "_id": -1},
        ProductSort::NameAsc => doc! {"name": 1, "_id": 1},
        ProductSort::NameDesc => doc! {"name": -1, "_id": -1},
        ProductSort::CreatedAtDesc => doc! {"createdAt": -1, "_id": -1},
        ProductSort::CreatedAtAsc => doc! {"createdAt": 1, "_id": 1},
    }
}

fn object_id(id: &str) -> Option<ObjectId> {
    if is_product_id(id) { ObjectId::parse_str(id).ok() } else { None }
}

impl ProductRepository for MongoProductStore {
    fn insert<'a>(&'a self, draft: &'a ProductDraft) -> BoxFuture<'a, Result<ProductView, ProductError>> {
        Box::pin(async move {
            let now = now_millis();
            let document = new_document(ObjectId::new(), draft, now)?;
            match self.products.insert_one(&document).await {
                Ok(_) => view_of(&document),
                Err(error) if is_duplicate_key(&error) => Err(ProductError::SkuTaken(draft.sku.clone())),
                Err(error) => Err(error.into()),
            }
        })
    }

    fn insert_many<'a>(&'a self, drafts: &'a [ProductDraft]) -> BoxFuture<'a, Result<(), ProductError>> {
        Box::pin(async move {
            let now = now_millis();
            let documents =
                drafts.iter().map(|draft| new_document(ObjectId::new(), draft, now)).collect::<Result<Vec<_>, _>>()?;
            match self.products.insert_many(&documents).await {
                Ok(_) => Ok(()),
                Err(error) if is_duplicate_key(&error) => {
                    let sku = first_duplicate_index(&error).and_then(|index| drafts.get(index)).map(|d| d.sku.clone());
                    Err(ProductError::SkuTaken(sku.unwrap_or_default()))
                }
                Err(error) => Err(error.into()),
            }
        })
    }

    fn replace<'a>(
        &'a self,
        id: &'a str,
        draft: &'a ProductDraft,
    ) -> BoxFuture<'a, Result<Option<ProductView>, ProductError>> {
        Box::pin(async move {
            let Some(object_id) = object_id(id) else { return Ok(None) };
            let mut fields = product_fields(draft)?;
            fields.insert("updatedAt", BsonDateTime::from_millis(now_millis()));
            let updated = self
                .products
                .find_one_and_update(doc! {"_id": object_id}, doc! {"$set": fields})
                .return_document(ReturnDocument::After)
                .await;
            match updated {
                Ok(Some(document)) => Ok(Some(view_of(&document)?)),
                Ok(None) => Ok(None),
                Err(error) if is_duplicate_key(&error) => Err(ProductError::SkuTaken(draft.sku.clone())),
                Err(error) => Err(error.into()),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ProductError>> {
        Box::pin(async move {
            let Some(object_id) = object_id(id) else { return Ok(false) };
            Ok(self.products.delete_one(doc! {"_id": object_id}).await?.deleted_count == 1)
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ProductView>, ProductError>> {
        Box::pin(async move {
            let Some(object_id) = object_id(id) else { return Ok(None) };
            match self.products.find_one(doc! {"_id": object_id}).await? {
                Some(document) => Ok(Some(view_of(&document)?)),
                None => Ok(None),
            }
        })
    }

    fn list<'a>(&'a self, query: &'a ProductQuery) -> BoxFuture<'a, Result<(Vec<ProductView>, u64), ProductError>> {
        Box::pin(async move {
            let filter = filter_of(query)?;
            let total = self.count_matching(filter.clone(), !query.words.is_empty()).await?;
            if query.page.offset() >= total {
                return Ok((Vec::new(), total));
            }
            let documents: Vec<Document> = self
                .products
                .find(filter)
                .sort(sort_of(query.sort))
                .skip(query.page.offset())
                .limit(query.page.size as i64)
                .await?
                .try_collect()
                .await?;
            let items = documents.iter().map(view_of).collect::<Result<Vec<_>, _>>()?;
            Ok((items, total))
        })
    }

    fn by_skus<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<ProductView>, ProductError>> {
        Box::pin(async move {
            let skus: Vec<Bson> = skus.iter().map(|sku| Bson::String(sku.clone())).collect();
            let documents: Vec<Document> = self.products.find(doc! {"sku": {"$in": skus}}).await?.try_collect().await?;
            documents.iter().map(view_of).collect()
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<u64, ProductError>> {
        Box::pin(async move { Ok(self.products.count_documents(doc! {}).await?) })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), ProductError>> {
        Box::pin(async move {
            self.database.run_command(doc! {"ping": 1}).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use emporium_contracts::page::PageRequest;

    use super::*;

    fn query() -> ProductQuery {
        ProductQuery {
            category: None,
            words: Vec::new(),
            min_price: None,
            max_price: None,
            sort: ProductSort::PriceAsc,
            page: PageRequest::default(),
        }
    }

    #[test]
    fn filters_hold_client_strings_only_as_values() {
        let hostile = ProductQuery {
            category: Some("{\"$ne\":\"x\"}".into()),
            words: vec!["where".into(), "ne".into()],
            min_price: Some(1999),
            max_price: Some(150_000),
            ..query()
        };
        let filter = filter_of(&hostile).unwrap();
        assert_eq!(filter.get("category"), Some(&Bson::String("{\"$ne\":\"x\"}".into())));
        assert_eq!(filter.get_document("$text").unwrap().get_str("$search").unwrap(), "\"where\" \"ne\"");
        let price = filter.get_document("price").unwrap();
        assert_eq!(price.get("$gte"), Some(&Bson::Decimal128(decimal("19.99").unwrap())));
        assert_eq!(price.get("$lte"), Some(&Bson::Decimal128(decimal("1500.00").unwrap())));
        assert_eq!(filter.keys().collect::<Vec<_>>(), vec!["category", "$text", "price"]);
        assert!(filter_of(&query()).unwrap().is_empty());
    }

    #[test]
    fn malformed_ids_are_not_ids() {
        assert!(object_id("{\"$ne\":null}").is_none());
        assert!(object_id("zzzzzzzzzzzzzzzzzzzzzzzz").is_none());
        assert!(object_id(&ObjectId::new().to_hex()).is_some());
    }
}
