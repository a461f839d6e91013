//! `drey gc`: one garbage-collection pass over the store, then exit.

use crate::config::{FileConfig, StoreArgs, StoreConfig};
use crate::storage::gc;

pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let file = FileConfig::load(args.config.as_deref())?;
    let (index, objects) = StoreConfig::resolve(&args, &file).open().await?;
    let report = gc::run_once(index.as_ref(), &objects).await?;
    tracing::info!(deleted = report.deleted, failed = report.failed, "gc done");
    if report.failed > 0 {
        anyhow::bail!(
            "{} objects could not be deleted; see the log",
            report.failed
        );
    }
    Ok(())
}
