//! `drey token --key ID ...`: prints a short signed token made with the key's secret from
//! the index (`KEYID.EXPIRY.SIGNATURE`): with `--stream APP/KEY` a ready RTMP publish URL
//! (`?token=`), with `--bearer` a token for `Authorization: Bearer` (the key's grants),
//! with `--play FLOW_ID` a token that reads one flow (`?token=` on its playlist or
//! download URL, e.g. for a player).

use std::io::Write;

use anyhow::{Context, bail};
use drey_core::token::{Purpose, token};

use crate::config::{FileConfig, StoreArgs, StoreConfig};

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["stream", "bearer", "play"])))]
pub struct TokenArgs {
    /// The access key to sign with (publishing needs a '*:write' grant; a bearer token
    /// carries the key's grants; a play token needs read access to the flow).
    #[arg(long)]
    pub key: String,
    /// An RTMP publish URL for APP/STREAM_KEY, e.g. live/cam1.
    #[arg(long)]
    pub stream: Option<String>,
    /// A bearer token for HTTP requests (`Authorization: Bearer TOKEN`).
    #[arg(long)]
    pub bearer: bool,
    /// A token that reads this flow (playlist, segments, download): `?token=TOKEN`.
    #[arg(long, value_name = "FLOW_ID")]
    pub play: Option<drey_core::Id>,
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
    if let Some(stream) = &args.stream {
        let ok = stream.split_once('/').is_some_and(|(app, key)| {
            !app.is_empty() && !key.is_empty() && !key.contains(['?', '/'])
        });
        if !ok {
            bail!("--stream must be APP/STREAM_KEY, e.g. live/cam1");
        }
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
    let out = if let Some(stream) = &args.stream {
        let t = token(Purpose::Publish, &key.id, &key.secret, stream, expires);
        format!("{}/{stream}?token={t}", args.rtmp_url.trim_end_matches('/'))
    } else if let Some(flow) = args.play {
        token(
            Purpose::Play,
            &key.id,
            &key.secret,
            &flow.to_string(),
            expires,
        )
    } else {
        token(Purpose::Bearer, &key.id, &key.secret, "", expires)
    };
    writeln!(std::io::stdout().lock(), "{out}")?;
    Ok(())
}
