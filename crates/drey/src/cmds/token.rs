//! `drey token --key ID --stream APP/KEY`: prints a ready RTMP publish URL carrying a short
//! signed token (`?token=KEYID.EXPIRY.SIGNATURE`), made with the key's secret from the
//! index.

use std::io::Write;

use anyhow::{Context, bail};

use crate::config::{FileConfig, StoreArgs, StoreConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// The access key to sign with (it needs a '*:write' grant to publish).
    #[arg(long)]
    pub key: String,
    /// What may be published: APP/STREAM_KEY, e.g. live/cam1.
    #[arg(long)]
    pub stream: String,
    /// Seconds the token is valid for (a publish that started in time keeps going).
    #[arg(long, default_value_t = 3600)]
    pub ttl: i64,
    /// The RTMP base URL publishers reach this server at.
    #[arg(long, default_value = "rtmp://127.0.0.1:1935")]
    pub rtmp_url: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let Some((app, stream_key)) = args.stream.split_once('/') else {
        bail!("--stream must be APP/STREAM_KEY, e.g. live/cam1");
    };
    if app.is_empty() || stream_key.is_empty() || stream_key.contains(['?', '/']) {
        bail!("--stream must be APP/STREAM_KEY, e.g. live/cam1");
    }
    if !(1..=31 * 24 * 3600).contains(&args.ttl) {
        bail!("--ttl must be 1 second to 31 days");
    }
    let file = FileConfig::load(args.store.config.as_deref())?;
    let (index, _) = StoreConfig::resolve(&args.store, &file).open().await?;
    let key = crate::auth::list_keys(index.as_ref())
        .await?
        .into_iter()
        .find(|k| k.id == args.key)
        .with_context(|| format!("no access key {}", args.key))?;
    if key.revoked {
        bail!("access key {} is revoked", key.id);
    }
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + args.ttl;
    let token = drey_core::token::publish_token(
        &key.id,
        &key.secret,
        &format!("{app}/{stream_key}"),
        expires,
    );
    writeln!(
        std::io::stdout().lock(),
        "{}/{app}/{stream_key}?token={token}",
        args.rtmp_url.trim_end_matches('/')
    )?;
    Ok(())
}
