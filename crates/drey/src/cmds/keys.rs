//! `drey keys create|list|revoke`: access keys for SigV4-signed requests, stored in the
//! index (every instance sharing the database accepts them within seconds).

use std::io::Write;

use anyhow::bail;

use crate::auth::{self, Grant};
use crate::config::{FileConfig, StoreArgs, StoreConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub action: KeysAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysAction {
    /// Create a key; prints its id and secret (the secret is shown once here, keep it).
    Create {
        /// SCOPE:ROLE, repeatable: scope `*`, `flow:ID` or `source:ID`; role read, write
        /// or admin. E.g. `--grant '*:read' --grant flow:ID:write`.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// A note saying who or what the key is for.
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List keys (ids, grants, labels; never secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key: requests signed with it are refused within seconds.
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let store = match &args.action {
        KeysAction::Create { store, .. }
        | KeysAction::List { store }
        | KeysAction::Revoke { store, .. } => store,
    };
    let file = FileConfig::load(store.config.as_deref())?;
    let (index, _) = StoreConfig::resolve(store, &file).open().await?;
    match args.action {
        KeysAction::Create { grants, label, .. } => {
            let grants = grants
                .iter()
                .map(|g| g.parse::<Grant>())
                .collect::<anyhow::Result<Vec<_>>>()?;
            let key = auth::create_key(index.as_ref(), grants, label).await?;
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::json!({"access_key_id": key.id, "secret_access_key": key.secret, "grants": key.grants})
            )?;
        }
        KeysAction::List { .. } => {
            for k in auth::list_keys(index.as_ref()).await? {
                let grants: Vec<String> = k
                    .grants
                    .iter()
                    .map(|g| format!("{}:{}", g.scope, format!("{:?}", g.role).to_lowercase()))
                    .collect();
                writeln!(
                    std::io::stdout().lock(),
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    if k.revoked { "revoked" } else { "active" },
                    grants.join(","),
                    k.created,
                    k.label.unwrap_or_default()
                )?;
            }
        }
        KeysAction::Revoke { id, .. } => {
            if id.is_empty() {
                bail!("give the key id to revoke");
            }
            auth::revoke_key(index.as_ref(), &id).await?;
            writeln!(std::io::stdout().lock(), "revoked {id}")?;
        }
    }
    Ok(())
}
