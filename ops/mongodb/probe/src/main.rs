//! Probe of the official Rust `mongodb` driver against a MongoDB-compatible server, exercising
//! what Emporium's product catalog needs. Prints one table row per step: `step | result | detail`.
//!
//! Usage: emporium-mongodb-probe [URL]   (default: $EMPORIUM_TEST_MONGODB_URL)
//! Exit status: 0 when no step FAILed, else 1. INFO rows report behaviour without asserting it;
//! KNOWN rows are documented differences of mongoeco 4.11.0 from MongoDB (they pass on MongoDB).
//! It drops and recreates the database `emporium_probe` on that server.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Decimal128, Document, doc, oid::ObjectId};
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, IndexModel};
use serde::{Deserialize, Serialize};

const DB: &str = "emporium_probe";
const N: usize = 250;
const CATEGORIES: [&str; 5] = ["shoes", "shirts", "hats", "bags", "socks"];
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product {
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    id: Option<ObjectId>,
    sku: String,
    name: String,
    description: String,
    category: String,
    price: Decimal128,
    price_cents: i64,
    stock: i32,
    tags: Vec<String>,
}

fn cents_to_decimal_string(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn dec(s: &str) -> Decimal128 {
    Decimal128::from_str(s).expect("valid decimal literal")
}

fn product(i: usize) -> Product {
    let category = CATEGORIES[i % CATEGORIES.len()];
    let cents = 500 + ((i as i64 * 137) % 10_000);
    let material = ["Leather", "Canvas", "Wool", "Cotton"][i % 4];
    let kind = match category {
        "shoes" => {
            if i.is_multiple_of(2) {
                "Running Shoe"
            } else {
                "Boot"
            }
        }
        "shirts" => "Shirt",
        "hats" => "Cap",
        "bags" => "Backpack",
        _ => "Sock",
    };
    Product {
        id: None,
        sku: format!("SKU-{i:04}"),
        name: format!("{material} {kind} {i}"),
        description: format!(
            "A {} {} made of {} for everyday use",
            category,
            kind.to_lowercase(),
            material.to_lowercase()
        ),
        category: category.to_string(),
        price: dec(&cents_to_decimal_string(cents)),
        price_cents: cents,
        stock: (i % 17) as i32,
        tags: vec![category.to_string(), material.to_lowercase()],
    }
}

enum Outcome {
    Pass(String),
    /// Behaviour reported, nothing asserted.
    Info(String),
    /// Differs from MongoDB in a way documented for mongoeco 4.11.0 (ops/mongodb/README.md); a
    /// real MongoDB passes the step. Does not fail the probe; any other difference does.
    Known(String),
}

trait OrMsg<T> {
    fn m(self) -> Result<T, String>;
}
impl<T, E: Display> OrMsg<T> for Result<T, E> {
    fn m(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// The server error code the driver decoded, wherever the error kind keeps it.
fn code_of(e: &Error) -> Option<i32> {
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m.write_errors.as_ref().and_then(|v| v.first()).map(|w| w.code),
        _ => None,
    }
}

fn type_name(b: Option<&Bson>) -> String {
    match b {
        None => "missing".into(),
        Some(b) => format!("{:?}", b.element_type()),
    }
}

struct Report {
    rows: Vec<(String, &'static str, String, Duration)>,
}

impl Report {
    fn record(&mut self, name: &str, out: Result<Outcome, String>, took: Duration) {
        let (status, detail) = match out {
            Ok(Outcome::Pass(d)) => ("PASS", d),
            Ok(Outcome::Info(d)) => ("INFO", d),
            Ok(Outcome::Known(d)) => ("KNOWN", d),
            Err(d) => ("FAIL", d),
        };
        println!("| {name} | {status} | {} | {} ms |", detail.replace('|', "/"), took.as_millis());
        self.rows.push((name.to_string(), status, detail, took));
    }
}

macro_rules! step {
    ($report:expr, $name:expr, $body:expr) => {{
        let started = Instant::now();
        let out: Result<Outcome, String> = match tokio::time::timeout(STEP_TIMEOUT, async { $body }).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} s", STEP_TIMEOUT.as_secs())),
        };
        $report.record($name, out, started.elapsed());
    }};
}

#[tokio::main]
async fn main() {
    let url =
        std::env::args().nth(1).or_else(|| std::env::var("EMPORIUM_TEST_MONGODB_URL").ok()).unwrap_or_else(|| {
            eprintln!("usage: emporium-mongodb-probe mongodb://127.0.0.1:PORT (or set EMPORIUM_TEST_MONGODB_URL)");
            std::process::exit(2)
        });
    let mut r = Report { rows: Vec::new() };
    println!("| step | result | detail | time |");
    println!("|---|---|---|---|");

    let mut opts = ClientOptions::parse(&url).await.expect("parse URL");
    opts.server_selection_timeout = Some(Duration::from_secs(5));
    opts.connect_timeout = Some(Duration::from_secs(5));
    opts.app_name = Some("emporium-mongodb-probe".into());
    let client = Client::with_options(opts).expect("client");
    let db = client.database(DB);
    let raw: Collection<Document> = db.collection("products");
    let typed: Collection<Product> = db.collection("products");
    let money: Collection<Document> = db.collection("money");
    let all: Vec<Product> = (0..N).map(product).collect();

    step!(r, "connect + ping", {
        let res = db.run_command(doc! {"ping": 1}).await.m()?;
        Ok(Outcome::Pass(format!("{res}")))
    });
    step!(r, "hello (server description)", {
        let h = db.run_command(doc! {"hello": 1}).await.m()?;
        Ok(Outcome::Info(format!(
            "version {} maxWireVersion {} setName {}",
            h.get("version").map(|v| v.to_string()).unwrap_or_default(),
            h.get("maxWireVersion").map(|v| v.to_string()).unwrap_or_default(),
            h.get("setName").map(|v| v.to_string()).unwrap_or("none (standalone)".into())
        )))
    });
    step!(r, "drop database (clean start)", {
        db.drop().await.m()?;
        Ok(Outcome::Pass("dropped".into()))
    });

    // ---- indexes --------------------------------------------------------------------------
    step!(r, "create unique index on sku", {
        let res = raw
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"sku": 1})
                    .options(IndexOptions::builder().unique(true).name("sku_unique".to_string()).build())
                    .build(),
            )
            .await
            .m()?;
        Ok(Outcome::Pass(format!("index {}", res.index_name)))
    });
    step!(r, "create indexes {category:1} and {category:1, price_cents:1}", {
        let res = raw
            .create_indexes([
                IndexModel::builder().keys(doc! {"category": 1}).build(),
                IndexModel::builder().keys(doc! {"category": 1, "price_cents": 1}).build(),
            ])
            .await
            .m()?;
        Ok(Outcome::Pass(format!("indexes {:?}", res.index_names)))
    });
    step!(r, "create text index on name+description", {
        let res = raw
            .create_index(
                IndexModel::builder()
                    .keys(doc! {"name": "text", "description": "text"})
                    .options(IndexOptions::builder().name("name_description_text".to_string()).build())
                    .build(),
            )
            .await
            .m()?;
        Ok(Outcome::Pass(format!("index {}", res.index_name)))
    });
    step!(r, "list_indexes (typed IndexModel) / list_index_names", {
        let models: Vec<IndexModel> = raw.list_indexes().await.m()?.try_collect().await.m()?;
        let names: Vec<String> = raw.list_index_names().await.m()?;
        let sku =
            models.iter().find(|m| m.keys.get("sku").is_some()).ok_or_else(|| format!("no sku index in {names:?}"))?;
        let unique = sku.options.as_ref().and_then(|o| o.unique);
        ensure(unique == Some(true), || format!("sku index unique flag is {unique:?}"))?;
        ensure(names.len() == 5, || format!("expected 5 indexes (_id + 4), got {names:?}"))?;
        Ok(Outcome::Pass(format!("{names:?}; sku unique=true")))
    });

    // ---- inserts -------------------------------------------------------------------------
    step!(r, "insert_one (typed, Decimal128 + i64 fields)", {
        let res = typed.insert_one(&all[0]).await.m()?;
        ensure(matches!(res.inserted_id, Bson::ObjectId(_)), || format!("inserted_id {:?}", res.inserted_id))?;
        Ok(Outcome::Pass(format!("inserted_id {}", res.inserted_id)))
    });
    step!(r, "insert_many (249 typed docs)", {
        let res = typed.insert_many(&all[1..]).await.m()?;
        ensure(res.inserted_ids.len() == N - 1, || format!("{} ids", res.inserted_ids.len()))?;
        Ok(Outcome::Pass(format!("{} inserted", res.inserted_ids.len())))
    });
    step!(r, "count_documents / estimated_document_count", {
        let total = raw.count_documents(doc! {}).await.m()?;
        let shoes = raw.count_documents(doc! {"category": "shoes"}).await.m()?;
        let est = raw.estimated_document_count().await.m()?;
        ensure(total == N as u64 && shoes == 50 && est == N as u64, || {
            format!("total {total} shoes {shoes} estimated {est}")
        })?;
        Ok(Outcome::Pass(format!("total {total}, shoes {shoes}, estimated {est}")))
    });

    // ---- queries -------------------------------------------------------------------------
    step!(r, "find filter+sort+skip+limit+projection", {
        let mut expected: Vec<&Product> = all.iter().filter(|p| p.category == "shoes").collect();
        expected.sort_by(|a, b| b.price_cents.cmp(&a.price_cents).then(a.sku.cmp(&b.sku)));
        let expected: Vec<(String, i64)> =
            expected.iter().skip(5).take(10).map(|p| (p.sku.clone(), p.price_cents)).collect();
        let docs: Vec<Document> = raw
            .find(doc! {"category": "shoes"})
            .sort(doc! {"price_cents": -1, "sku": 1})
            .skip(5)
            .limit(10)
            .projection(doc! {"_id": 0, "sku": 1, "price_cents": 1})
            .await
            .m()?
            .try_collect()
            .await
            .m()?;
        let keys: BTreeSet<String> = docs.iter().flat_map(|d| d.keys().cloned()).collect();
        ensure(keys == BTreeSet::from(["price_cents".to_string(), "sku".to_string()]), || {
            format!("projected keys {keys:?}")
        })?;
        let got: Vec<(String, i64)> = docs
            .iter()
            .map(|d| (d.get_str("sku").unwrap_or("?").to_string(), d.get_i64("price_cents").unwrap_or(-1)))
            .collect();
        ensure(got == expected, || format!("got {got:?} expected {expected:?}"))?;
        Ok(Outcome::Pass(format!("10 docs in order, first {:?}", got[0])))
    });
    step!(r, "find_one typed (Decimal128 round trip)", {
        let p = typed.find_one(doc! {"sku": "SKU-0007"}).await.m()?.ok_or("not found")?;
        ensure(p.price.to_string() == all[7].price.to_string() && p.price_cents == all[7].price_cents, || {
            format!("price {} cents {}", p.price, p.price_cents)
        })?;
        Ok(Outcome::Pass(format!("{} price {} cents {}", p.sku, p.price, p.price_cents)))
    });
    step!(r, "find $in + $gte/$lte on i64 + sort", {
        let got: Vec<Document> = raw
            .find(doc! {"category": {"$in": ["hats", "bags"]}, "price_cents": {"$gte": 3000_i64, "$lte": 6000_i64}})
            .sort(doc! {"price_cents": 1, "sku": 1})
            .await
            .m()?
            .try_collect()
            .await
            .m()?;
        let mut exp: Vec<&Product> = all
            .iter()
            .filter(|p| (p.category == "hats" || p.category == "bags") && (3000..=6000).contains(&p.price_cents))
            .collect();
        exp.sort_by(|a, b| a.price_cents.cmp(&b.price_cents).then(a.sku.cmp(&b.sku)));
        let got_skus: Vec<&str> = got.iter().map(|d| d.get_str("sku").unwrap_or("?")).collect();
        let exp_skus: Vec<&str> = exp.iter().map(|p| p.sku.as_str()).collect();
        ensure(got_skus == exp_skus, || format!("got {got_skus:?} expected {exp_skus:?}"))?;
        Ok(Outcome::Pass(format!("{} docs in order", got.len())))
    });

    // ---- updates ---------------------------------------------------------------------------
    step!(r, "update_one $set + $inc", {
        let res = raw
            .update_one(doc! {"sku": "SKU-0001"}, doc! {"$set": {"name": "Renamed"}, "$inc": {"stock": 5}})
            .await
            .m()?;
        ensure(res.matched_count == 1 && res.modified_count == 1, || format!("{res:?}"))?;
        let d = raw.find_one(doc! {"sku": "SKU-0001"}).await.m()?.ok_or("gone")?;
        let stock = d.get_i32("stock").m()?;
        ensure(d.get_str("name").m()? == "Renamed" && stock == all[1].stock + 5, || format!("{d}"))?;
        Ok(Outcome::Pass(format!("matched 1 modified 1, stock {} -> {stock}", all[1].stock)))
    });
    step!(r, "find_one_and_update $inc (return After / Before)", {
        let after = raw
            .find_one_and_update(doc! {"sku": "SKU-0002"}, doc! {"$inc": {"stock": -1}, "$set": {"reserved": true}})
            .return_document(ReturnDocument::After)
            .await
            .m()?
            .ok_or("no doc")?;
        let before = raw
            .find_one_and_update(doc! {"sku": "SKU-0002"}, doc! {"$inc": {"stock": -1}})
            .return_document(ReturnDocument::Before)
            .await
            .m()?
            .ok_or("no doc")?;
        let s0 = all[2].stock;
        ensure(after.get_i32("stock").m()? == s0 - 1 && before.get_i32("stock").m()? == s0 - 1, || {
            format!("after {after} before {before}")
        })?;
        ensure(after.get_bool("reserved").m()?, || "reserved not set".into())?;
        Ok(Outcome::Pass(format!("stock {s0} -> {} (After), Before saw {}", s0 - 1, s0 - 1)))
    });
    step!(r, "find_one_and_update upsert (new sku)", {
        let d = raw
            .find_one_and_update(
                doc! {"sku": "SKU-NEW"},
                doc! {"$set": {"name": "Fresh", "category": "hats"}, "$inc": {"stock": 3}},
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await
            .m()?
            .ok_or("upsert returned nothing")?;
        ensure(d.get_i32("stock").m()? == 3 && d.get_str("sku").m()? == "SKU-NEW", || format!("{d}"))?;
        Ok(Outcome::Pass("upserted, stock 3".into()))
    });
    step!(r, "update_many $inc", {
        let res = raw.update_many(doc! {"category": "socks"}, doc! {"$inc": {"stock": 1}}).await.m()?;
        ensure(res.matched_count == 50 && res.modified_count == 50, || format!("{res:?}"))?;
        Ok(Outcome::Pass("50 matched, 50 modified".into()))
    });
    step!(r, "replace_one", {
        let mut p = all[3].clone();
        p.name = "Replaced".into();
        let res = typed.replace_one(doc! {"sku": "SKU-0003"}, &p).await.m()?;
        ensure(res.modified_count == 1, || format!("{res:?}"))?;
        Ok(Outcome::Pass("modified 1".into()))
    });
    step!(r, "delete_one / delete_many", {
        let one = raw.delete_one(doc! {"sku": "SKU-NEW"}).await.m()?;
        let gone = raw.find_one(doc! {"sku": "SKU-NEW"}).await.m()?;
        ensure(one.deleted_count == 1 && gone.is_none(), || format!("{one:?} {gone:?}"))?;
        raw.insert_many([doc! {"sku": "TMP-1", "category": "tmp"}, doc! {"sku": "TMP-2", "category": "tmp"}])
            .await
            .m()?;
        let many = raw.delete_many(doc! {"category": "tmp"}).await.m()?;
        ensure(many.deleted_count == 2, || format!("{many:?}"))?;
        Ok(Outcome::Pass("deleted 1, then 2".into()))
    });

    // ---- unique index --------------------------------------------------------------------
    step!(r, "duplicate sku insert_one -> E11000", {
        match typed.insert_one(&all[5]).await {
            Ok(_) => Err("duplicate accepted".into()),
            Err(e) => {
                let code = code_of(&e);
                ensure(code == Some(11000), || format!("code {code:?}: {e}"))?;
                ensure(matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(_))), || format!("kind {e}"))?;
                Ok(Outcome::Pass(format!("WriteError code 11000: {}", first_line(&e))))
            }
        }
    });
    step!(r, "duplicate sku in insert_many -> E11000 (ordered)", {
        let docs = [doc! {"sku": "SKU-U1"}, doc! {"sku": "SKU-0006"}, doc! {"sku": "SKU-U2"}];
        match raw.insert_many(docs).await {
            Ok(_) => Err("duplicate accepted".into()),
            Err(e) => {
                let index = match &*e.kind {
                    ErrorKind::InsertMany(m) => m.write_errors.as_ref().and_then(|v| v.first()).map(|w| w.index),
                    _ => None,
                };
                ensure(code_of(&e) == Some(11000) && index == Some(1), || {
                    format!("code {:?} index {index:?}: {e}", code_of(&e))
                })?;
                let u1 = raw.count_documents(doc! {"sku": "SKU-U1"}).await.m()?;
                let u2 = raw.count_documents(doc! {"sku": "SKU-U2"}).await.m()?;
                ensure(u1 == 1 && u2 == 0, || format!("ordered semantics: U1 {u1} U2 {u2}"))?;
                raw.delete_one(doc! {"sku": "SKU-U1"}).await.m()?;
                Ok(Outcome::Pass(
                    "InsertMany write error index 1 code 11000; doc before it kept, after it not inserted".into(),
                ))
            }
        }
    });
    step!(r, "update to duplicate sku -> E11000", {
        match raw.update_one(doc! {"sku": "SKU-0008"}, doc! {"$set": {"sku": "SKU-0009"}}).await {
            Ok(res) => Err(format!("accepted: {res:?}")),
            Err(e) => {
                ensure(code_of(&e) == Some(11000), || format!("code {:?}: {e}", code_of(&e)))?;
                Ok(Outcome::Pass("code 11000".into()))
            }
        }
    });

    // ---- search ----------------------------------------------------------------------------
    step!(r, "$text search 'leather'", {
        let docs: Vec<Document> =
            raw.find(doc! {"$text": {"$search": "leather"}}).await.m()?.try_collect().await.m()?;
        let got: BTreeSet<String> = docs.iter().map(|d| d.get_str("sku").unwrap_or("?").to_string()).collect();
        let exp = expected_text_hits(&all, |words| words.contains(&"leather"));
        ensure(got == exp, || {
            format!(
                "got {} expected {} (missing {:?}, extra {:?})",
                got.len(),
                exp.len(),
                exp.difference(&got).take(5).collect::<Vec<_>>(),
                got.difference(&exp).take(5).collect::<Vec<_>>()
            )
        })?;
        Ok(Outcome::Pass(format!("{} hits, the expected set", got.len())))
    });
    step!(r, "$text with textScore projection + sort", {
        let docs: Vec<Document> = raw
            .find(doc! {"$text": {"$search": "running leather"}})
            .projection(doc! {"sku": 1, "name": 1, "score": {"$meta": "textScore"}})
            .sort(doc! {"score": {"$meta": "textScore"}})
            .limit(5)
            .await
            .m()?
            .try_collect()
            .await
            .m()?;
        ensure(!docs.is_empty(), || "no hits".into())?;
        let scores: Vec<f64> = docs.iter().map(|d| d.get_f64("score").unwrap_or(f64::NAN)).collect();
        ensure(scores.windows(2).all(|w| w[0] >= w[1]), || format!("scores not descending {scores:?}"))?;
        let keys: BTreeSet<String> = docs[0].keys().cloned().collect();
        ensure(keys == BTreeSet::from(["_id", "name", "score", "sku"].map(String::from)), || {
            format!("projected keys {keys:?}")
        })?;
        let top = docs[0].get_str("name").unwrap_or("?");
        Ok(Outcome::Pass(format!("scores {scores:?}, top '{top}', projected _id/sku/name/score")))
    });
    step!(r, "$text phrase + negation", {
        let phrase: Vec<Document> =
            raw.find(doc! {"$text": {"$search": "\"running shoe\""}}).await.m()?.try_collect().await.m()?;
        let neg: Vec<Document> =
            raw.find(doc! {"$text": {"$search": "cap -leather"}}).await.m()?.try_collect().await.m()?;
        let sk = |v: &[Document]| {
            v.iter().map(|d| d.get_str("sku").unwrap_or("?").to_string()).collect::<BTreeSet<String>>()
        };
        let exp_phrase = expected_text_hits(&all, |w| w.windows(2).any(|p| p == ["running", "shoe"]));
        let exp_neg = expected_text_hits(&all, |w| w.contains(&"cap") && !w.contains(&"leather"));
        ensure(sk(&phrase) == exp_phrase && sk(&neg) == exp_neg && !exp_neg.is_empty(), || {
            format!(
                "phrase {} (expected {}), 'cap -leather' {} (expected {})",
                phrase.len(),
                exp_phrase.len(),
                neg.len(),
                exp_neg.len()
            )
        })?;
        Ok(Outcome::Pass(format!(
            "phrase \"running shoe\": {} hits; 'cap -leather': {} hits; the expected sets",
            phrase.len(),
            neg.len()
        )))
    });
    step!(r, "$text stemming ('shoes' matches 'shoe' on MongoDB)", {
        let plural: Vec<Document> =
            raw.find(doc! {"$text": {"$search": "shoes"}}).await.m()?.try_collect().await.m()?;
        let singular: Vec<Document> =
            raw.find(doc! {"$text": {"$search": "shoe"}}).await.m()?.try_collect().await.m()?;
        // 'shoes' is also a category word in the descriptions ("A shoes running shoe ..."), so use
        // a word that only occurs in the singular: "boot" (names "... Boot N", descriptions "boot").
        let boots: Vec<Document> = raw.find(doc! {"$text": {"$search": "boots"}}).await.m()?.try_collect().await.m()?;
        let boot: Vec<Document> = raw.find(doc! {"$text": {"$search": "boot"}}).await.m()?.try_collect().await.m()?;
        let detail = format!(
            "'boots' -> {} hits, 'boot' -> {} ('shoes' {}, 'shoe' {})",
            boots.len(),
            boot.len(),
            plural.len(),
            singular.len()
        );
        if boots.len() == boot.len() && !boot.is_empty() {
            Ok(Outcome::Pass(format!("stemmed: {detail}")))
        } else if boots.is_empty() && !boot.is_empty() {
            Ok(Outcome::Known(format!("no stemming: {detail}")))
        } else {
            Err(detail)
        }
    });
    step!(r, "count_documents with $text (aggregate $match)", {
        match raw.count_documents(doc! {"$text": {"$search": "leather"}}).await {
            Ok(n) => {
                let exp = expected_text_hits(&all, |w| w.contains(&"leather")).len() as u64;
                ensure(n == exp, || format!("{n}, expected {exp}"))?;
                Ok(Outcome::Pass(format!("{n}")))
            }
            Err(e) if e.to_string().contains("Unsupported top-level query operator: $text") => {
                Ok(Outcome::Known(format!(
                    "mongoeco rejects $text inside aggregate $match (count_documents sends aggregate): code {:?} '{}'",
                    code_of(&e),
                    "Unsupported top-level query operator: $text"
                )))
            }
            Err(e) => Err(e.to_string()),
        }
    });
    step!(r, "$regex case-insensitive search", {
        let docs: Vec<Document> =
            raw.find(doc! {"name": {"$regex": "leather back", "$options": "i"}}).await.m()?.try_collect().await.m()?;
        let exp = all.iter().filter(|p| p.name.to_lowercase().contains("leather back") && p.sku != "SKU-0003").count();
        ensure(docs.len() == exp && exp > 0, || format!("got {} expected {exp}", docs.len()))?;
        let bre = mongodb::bson::Regex { pattern: "^WOOL".try_into().m()?, options: "i".try_into().m()? };
        let n = raw.count_documents(doc! {"name": bre}).await.m()?;
        let exp2 = all
            .iter()
            .filter(|p| p.name.starts_with("Wool") && !["SKU-0001", "SKU-0003"].contains(&p.sku.as_str()))
            .count() as u64;
        ensure(n == exp2, || format!("bson Regex ^WOOL/i: {n} expected {exp2}"))?;
        Ok(Outcome::Pass(format!("$regex/$options i: {} hits; bson Regex ^WOOL/i: {n}", docs.len())))
    });

    // ---- money -----------------------------------------------------------------------------
    let amounts = [
        "0.10",
        "0.20",
        "19.99",
        "19.990",
        "10.5",
        "10.50",
        "12345678901234567.88",
        "12345678901234567.89",
        "-3.00",
        "1E+3",
    ];
    step!(r, "Decimal128 round trip (exact digits and exponent)", {
        money.drop().await.m()?;
        let docs: Vec<Document> =
            amounts.iter().enumerate().map(|(i, a)| doc! {"i": i as i32, "amount": dec(a)}).collect();
        money.insert_many(docs).await.m()?;
        let back: Vec<Document> = money.find(doc! {}).sort(doc! {"i": 1}).await.m()?.try_collect().await.m()?;
        let got: Vec<String> = back
            .iter()
            .map(|d| match d.get("amount") {
                Some(Bson::Decimal128(x)) => x.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        let exp: Vec<String> = amounts.iter().map(|a| dec(a).to_string()).collect();
        ensure(got == exp, || format!("got {got:?} expected {exp:?}"))?;
        Ok(Outcome::Pass(format!("all {} back as Decimal128 with the same digits: {got:?}", got.len())))
    });
    step!(r, "Decimal128 range $gte/$lte", {
        let n = money.count_documents(doc! {"amount": {"$gte": dec("10.50"), "$lte": dec("19.99")}}).await.m()?;
        // 19.99, 19.990, 10.5, 10.50 -> 4
        ensure(n == 4, || format!("got {n}, expected 4 (10.5, 10.50, 19.99, 19.990)"))?;
        let big = money.count_documents(doc! {"amount": {"$gt": dec("12345678901234567.88")}}).await.m()?;
        ensure(big == 1, || format!("$gt 12345678901234567.88 matched {big}, expected 1 (float would give 0)"))?;
        let eq = money.count_documents(doc! {"amount": dec("10.5")}).await.m()?;
        ensure(eq == 2, || format!("equality 10.5 matched {eq}, expected 2 (10.5 and 10.50)"))?;
        let mixed = money.count_documents(doc! {"amount": {"$gte": 10_i32, "$lt": 20.0_f64}}).await.m()?;
        ensure(mixed == 4, || format!("compare with int/double bounds matched {mixed}, expected 4"))?;
        Ok(Outcome::Pass("10.50..19.99 -> 4; > ...67.88 -> 1 (no float collapse); 10.5 == 10.50; int/double bounds compare numerically".into()))
    });
    step!(r, "Decimal128 sort asc/desc", {
        let asc: Vec<Document> =
            money.find(doc! {}).sort(doc! {"amount": 1, "i": 1}).await.m()?.try_collect().await.m()?;
        let got: Vec<String> = asc.iter().map(|d| d.get("amount").map(|b| b.to_string()).unwrap_or_default()).collect();
        let order: Vec<i32> = asc.iter().map(|d| d.get_i32("i").unwrap_or(-1)).collect();
        // -3.00, 0.10, 0.20, 10.5, 10.50, 19.99, 19.990, 1E+3, ...67.88, ...67.89
        let exp_order = vec![8, 0, 1, 4, 5, 2, 3, 9, 6, 7];
        ensure(order == exp_order, || format!("asc order {order:?} ({got:?}), expected {exp_order:?}"))?;
        let desc: Vec<Document> =
            money.find(doc! {}).sort(doc! {"amount": -1}).limit(2).await.m()?.try_collect().await.m()?;
        let top: Vec<i32> = desc.iter().map(|d| d.get_i32("i").unwrap_or(-1)).collect();
        ensure(top == vec![7, 6], || format!("desc top {top:?}"))?;
        Ok(Outcome::Pass("numeric order incl. 1E+3 and 17-digit values differing in the last cent".into()))
    });
    step!(r, "Decimal128 $inc exact (0.10 + 0.20)", {
        let d = money
            .find_one_and_update(doc! {"i": 0}, doc! {"$inc": {"amount": dec("0.20")}})
            .return_document(ReturnDocument::After)
            .await
            .m()?
            .ok_or("no doc")?;
        let v = d.get("amount").cloned();
        match &v {
            Some(Bson::Decimal128(x)) if x.to_string() == "0.30" => Ok(Outcome::Pass("0.30 (Decimal128)".into())),
            _ => Err(format!("got {v:?}")),
        }
    });
    step!(r, "Decimal128 aggregate $sum / $min / $max", {
        let out: Vec<Document> = money
            .aggregate([doc! {"$match": {"i": {"$in": [1, 2, 4]}}}, doc! {"$group": {"_id": null, "sum": {"$sum": "$amount"}, "min": {"$min": "$amount"}, "max": {"$max": "$amount"}}}])
            .await
            .m()?
            .try_collect()
            .await
            .m()?;
        let g = out.first().ok_or("no group")?;
        let sum = g.get("sum").cloned();
        // 0.20 + 19.99 + 10.5 = 30.69
        match &sum {
            Some(Bson::Decimal128(x)) if x.to_string() == "30.69" => Ok(Outcome::Pass(format!(
                "sum 30.69 (Decimal128), min {}, max {}",
                g.get("min").map(|b| b.to_string()).unwrap_or_default(),
                g.get("max").map(|b| b.to_string()).unwrap_or_default()
            ))),
            _ => Err(format!("sum {sum:?} types min {} max {}", type_name(g.get("min")), type_name(g.get("max")))),
        }
    });
    step!(r, "Int64 cents beyond 2^53 (range, sort, exact read-back)", {
        let c: Collection<Document> = db.collection("cents");
        c.drop().await.m()?;
        let big = 9_007_199_254_740_993_i64; // 2^53 + 1: not representable as f64
        c.insert_many([doc! {"n": big}, doc! {"n": big - 1}, doc! {"n": 1999_i64}]).await.m()?;
        let gt = c.count_documents(doc! {"n": {"$gt": big - 1}}).await.m()?;
        let docs: Vec<Document> = c
            .find(doc! {"n": {"$gte": 1000_i64, "$lte": big}})
            .sort(doc! {"n": -1})
            .await
            .m()?
            .try_collect()
            .await
            .m()?;
        let vals: Vec<i64> = docs.iter().map(|d| d.get_i64("n").unwrap_or(0)).collect();
        ensure(gt == 1 && vals == vec![big, big - 1, 1999], || {
            format!(
                "$gt matched {gt}; sorted {vals:?} types {:?}",
                docs.iter().map(|d| type_name(d.get("n"))).collect::<Vec<_>>()
            )
        })?;
        Ok(Outcome::Pass(format!("{vals:?} exact, Int64 type kept")))
    });
    step!(r, "$inc Int64 field by Int64 (type of result)", {
        let c: Collection<Document> = db.collection("cents");
        c.insert_one(doc! {"k": "inc", "n": 100_i64}).await.m()?;
        c.update_one(doc! {"k": "inc"}, doc! {"$inc": {"n": 5_i64}}).await.m()?;
        let d = c.find_one(doc! {"k": "inc"}).await.m()?.ok_or("gone")?;
        let t = type_name(d.get("n"));
        if t == "Int64" {
            Ok(Outcome::Pass("105 stays Int64".into()))
        } else {
            Err(format!(
                "value {} came back as {t} (MongoDB keeps Int64); an i64 serde field still reads it",
                d.get("n").map(|b| b.to_string()).unwrap_or_default()
            ))
        }
    });

    // ---- cursors ---------------------------------------------------------------------------
    step!(r, "find over several batches (batch_size 40 -> getMore)", {
        let mut cursor = raw.find(doc! {}).sort(doc! {"sku": 1}).batch_size(40).await.m()?;
        let mut n = 0;
        let mut last = String::new();
        while let Some(d) = cursor.try_next().await.m()? {
            let sku = d.get_str("sku").m()?.to_string();
            ensure(sku > last, || format!("order broken at {sku}"))?;
            last = sku;
            n += 1;
        }
        ensure(n == N, || format!("{n} docs"))?;
        Ok(Outcome::Pass(format!("{n} docs in 7 batches, sorted")))
    });
    step!(r, "typed cursor over several batches (Collection<Product>)", {
        let v: Vec<Product> = typed.find(doc! {"category": "bags"}).batch_size(7).await.m()?.try_collect().await.m()?;
        ensure(v.len() == 50, || format!("{} docs", v.len()))?;
        Ok(Outcome::Pass("50 Product values deserialised across 8 batches".into()))
    });
    step!(r, "aggregate $group over several batches", {
        let out: Vec<Document> = raw
            .aggregate([doc! {"$group": {"_id": "$category", "n": {"$sum": 1}}}, doc! {"$sort": {"_id": 1}}])
            .batch_size(2)
            .await
            .m()?
            .try_collect()
            .await
            .m()?;
        let got: Vec<(String, i64)> = out
            .iter()
            .map(|d| {
                (
                    d.get_str("_id").unwrap_or("?").to_string(),
                    d.get("n").and_then(|b| b.as_i64().or(b.as_i32().map(i64::from))).unwrap_or(-1),
                )
            })
            .collect();
        let exp: Vec<(String, i64)> =
            ["bags", "hats", "shirts", "shoes", "socks"].iter().map(|c| (c.to_string(), 50)).collect();
        ensure(got == exp, || format!("{got:?}"))?;
        Ok(Outcome::Pass("5 groups of 50 in 3 batches".into()))
    });
    step!(r, "cursor dropped early (killCursors), then more work", {
        {
            let mut cursor = raw.find(doc! {}).batch_size(10).await.m()?;
            for _ in 0..3 {
                cursor.try_next().await.m()?;
            }
        } // dropped with the server cursor still open: the driver sends killCursors
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = raw.count_documents(doc! {}).await.m()?;
        ensure(n == N as u64, || format!("count {n}"))?;
        Ok(Outcome::Pass("no error; connection still usable".into()))
    });
    step!(r, "distinct", {
        let v = raw.distinct("category", doc! {}).await.m()?;
        ensure(v.len() == 5, || format!("{v:?}"))?;
        Ok(Outcome::Pass(format!("{} categories", v.len())))
    });
    step!(r, "list_collection_names / list_collections (typed spec)", {
        let names = db.list_collection_names().await.m()?;
        let specs: Vec<mongodb::results::CollectionSpecification> =
            db.list_collections().await.m()?.try_collect().await.m()?;
        ensure(names.iter().any(|n| n == "products") && specs.len() == names.len(), || {
            format!("names {names:?} specs {}", specs.len())
        })?;
        Ok(Outcome::Pass(format!("collections {names:?}")))
    });
    step!(r, "list_database_names (collections hold Decimal128/Int64)", {
        let dbs = client.list_database_names().await.m()?;
        ensure(dbs.iter().any(|d| d == DB), || format!("databases {dbs:?}"))?;
        Ok(Outcome::Pass(format!("{dbs:?}")))
    });

    // ---- transactions ----------------------------------------------------------------------
    step!(r, "transaction commit", {
        let mut s = client.start_session().await.m()?;
        s.start_transaction().await.m()?;
        raw.insert_one(doc! {"sku": "TX-1", "category": "tx"}).session(&mut s).await.m()?;
        raw.update_one(doc! {"sku": "SKU-0010"}, doc! {"$inc": {"stock": 100}}).session(&mut s).await.m()?;
        s.commit_transaction().await.m()?;
        let ok = raw.count_documents(doc! {"sku": "TX-1"}).await.m()? == 1;
        let stock = raw.find_one(doc! {"sku": "SKU-0010"}).await.m()?.ok_or("gone")?.get_i32("stock").m()?;
        ensure(ok && stock == all[10].stock + 100, || format!("inserted {ok} stock {stock}"))?;
        Ok(Outcome::Pass("insert + update visible after commit".into()))
    });
    step!(r, "transaction abort", {
        let mut s = client.start_session().await.m()?;
        s.start_transaction().await.m()?;
        raw.insert_one(doc! {"sku": "TX-2", "category": "tx"}).session(&mut s).await.m()?;
        raw.update_one(doc! {"sku": "SKU-0011"}, doc! {"$inc": {"stock": 100}}).session(&mut s).await.m()?;
        s.abort_transaction().await.m()?;
        let n = raw.count_documents(doc! {"sku": "TX-2"}).await.m()?;
        let stock = raw.find_one(doc! {"sku": "SKU-0011"}).await.m()?.ok_or("gone")?.get_i32("stock").m()?;
        ensure(n == 0 && stock == all[11].stock, || format!("after abort: TX-2 count {n}, stock {stock}"))?;
        Ok(Outcome::Pass("insert + update rolled back".into()))
    });
    step!(r, "transaction isolation (uncommitted write invisible outside)", {
        let mut s = client.start_session().await.m()?;
        s.start_transaction().await.m()?;
        raw.insert_one(doc! {"sku": "TX-3", "category": "tx"}).session(&mut s).await.m()?;
        let inside = raw.count_documents(doc! {"sku": "TX-3"}).session(&mut s).await.m()?;
        let outside = raw.count_documents(doc! {"sku": "TX-3"}).await.m()?;
        s.commit_transaction().await.m()?;
        let after = raw.count_documents(doc! {"sku": "TX-3"}).await.m()?;
        ensure(inside == 1 && outside == 0 && after == 1, || {
            format!("inside {inside} outside {outside} after {after}")
        })?;
        Ok(Outcome::Pass("inside 1, outside 0, after commit 1".into()))
    });
    step!(r, "duplicate key inside a transaction", {
        let mut s = client.start_session().await.m()?;
        s.start_transaction().await.m()?;
        raw.insert_one(doc! {"sku": "TX-4"}).session(&mut s).await.m()?;
        let dup = raw.insert_one(doc! {"sku": "SKU-0012"}).session(&mut s).await;
        let code = dup.as_ref().err().and_then(code_of);
        let _ = s.abort_transaction().await;
        let n = raw.count_documents(doc! {"sku": "TX-4"}).await.m()?;
        ensure(code == Some(11000) && n == 0, || format!("code {code:?}, TX-4 after abort {n}"))?;
        Ok(Outcome::Pass("11000 inside txn; abort rolls back the earlier insert".into()))
    });

    // ---- errors, concurrency -----------------------------------------------------------------
    step!(r, "unknown command -> CommandError with code", {
        match db.run_command(doc! {"noSuchCommand": 1}).await {
            Ok(d) => Err(format!("accepted: {d}")),
            Err(e) => match &*e.kind {
                ErrorKind::Command(c) => Ok(Outcome::Pass(format!("code {} {} '{}'", c.code, c.code_name, c.message))),
                _ => Err(format!("not a command error: {e}")),
            },
        }
    });
    step!(r, "bad query operator -> CommandError with code", {
        match raw.find_one(doc! {"price": {"$bogus": 1}}).await {
            Ok(d) => Err(format!("accepted: {d:?}")),
            Err(e) => match &*e.kind {
                ErrorKind::Command(c) => Ok(Outcome::Pass(format!("code {} {} '{}'", c.code, c.code_name, c.message))),
                _ => Err(format!("not a command error: {e}")),
            },
        }
    });
    step!(r, "50 concurrent $inc on one document", {
        raw.insert_one(doc! {"sku": "CNT", "hits": 0_i32}).await.m()?;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = raw.clone();
            tasks
                .push(tokio::spawn(async move { c.update_one(doc! {"sku": "CNT"}, doc! {"$inc": {"hits": 1}}).await }));
        }
        for t in tasks {
            t.await.m()?.m()?;
        }
        let hits = raw.find_one(doc! {"sku": "CNT"}).await.m()?.ok_or("gone")?.get_i32("hits").m()?;
        ensure(hits == 50, || format!("hits {hits}"))?;
        Ok(Outcome::Pass("50".into()))
    });

    let failed: Vec<&str> = r.rows.iter().filter(|x| x.1 == "FAIL").map(|x| x.0.as_str()).collect();
    let passed = r.rows.iter().filter(|x| x.1 == "PASS").count();
    let info = r.rows.iter().filter(|x| x.1 == "INFO").count();
    let known = r.rows.iter().filter(|x| x.1 == "KNOWN").count();
    let total: Duration = r.rows.iter().map(|x| x.3).sum();
    println!();
    println!(
        "probe: {passed} passed, {} failed, {known} known mongoeco differences, {info} info, {} ms",
        failed.len(),
        total.as_millis()
    );
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn first_line(e: &Error) -> String {
    e.to_string().lines().next().unwrap_or("").chars().take(160).collect()
}

/// Which products a $text query should return: `pred` gets the lower-cased words of name and
/// description, with the edits made earlier in the probe applied (SKU-0001 renamed "Renamed",
/// SKU-0003 replaced with name "Replaced"; SKU-0008's failed duplicate update changed nothing).
fn expected_text_hits(all: &[Product], pred: impl Fn(&[&str]) -> bool) -> BTreeSet<String> {
    all.iter()
        .filter(|p| {
            let name = match p.sku.as_str() {
                "SKU-0001" => "Renamed".to_string(),
                "SKU-0003" => "Replaced".to_string(),
                _ => p.name.clone(),
            };
            let text = format!("{} {}", name, p.description).to_lowercase();
            let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
            pred(&words)
        })
        .map(|p| p.sku.clone())
        .collect()
}
