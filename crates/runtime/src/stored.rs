//! Stored connections' secrets: where a sealed secret is bound ([`aad`]), opening one
//! ([`open_secret`]), and the [`LaunchSpec`] a stored connection's secrets open into
//! ([`launch_spec`]), for the hub's replica sync, Studio's routes and the binary's key rotation.
//! The AAD strings are part of the stored data: changing them makes stored secrets unreadable.

use m3::{IonApi, MdpEndpoint, Secret};
use store::ConnectionRecord;

use crate::connection::{Hosting, LaunchSpec};

/// Where a sealed secret of a connection is stored: binds the ciphertext to it.
pub fn aad(connection: &str, field: &str) -> String {
    format!("connection/{connection}/{field}")
}

/// One sealed secret of a stored connection, opened (`None` when it has none).
pub fn open_secret(vault: &vault::Vault, rec: &ConnectionRecord, field: &str) -> Result<Option<String>, String> {
    rec.secrets
        .get(field)
        .map(|sealed| vault.open_string(sealed, &aad(&rec.name, field)))
        .transpose()
        .map_err(|e| format!("connection {}: {field}: {e}", rec.name))
}

/// A stored connection's on-premises Metadata Publisher, its password opened.
pub fn stored_mdp(vault: &vault::Vault, rec: &ConnectionRecord) -> Result<Option<MdpEndpoint>, String> {
    let Some(m) = rec.settings.get("mdp").filter(|m| !m.is_null()) else {
        return Ok(None);
    };
    Ok(Some(MdpEndpoint {
        url: m["url"]
            .as_str()
            .and_then(|u| url::Url::parse(u).ok())
            .ok_or_else(|| format!("connection {}: stored MDP URL unreadable", rec.name))?,
        username: m["username"].as_str().unwrap_or_default().into(),
        password: Secret::new(open_secret(vault, rec, "mdpPassword")?.unwrap_or_default()),
    }))
}

/// Open a stored connection's secrets into a [`LaunchSpec`]. A hosted connection has none while
/// no `.ionapi` is saved; a self-hosted one runs from its creation (its connector calls home and
/// receives the file once it is saved), with `ionapi` `None` until then.
pub fn launch_spec(vault: &vault::Vault, rec: &ConnectionRecord) -> Result<Option<LaunchSpec>, String> {
    let hosting = Hosting::parse(&rec.hosting).unwrap_or(Hosting::Hosted);
    let ionapi = match open_secret(vault, rec, "ionapi")? {
        Some(text) => Some(IonApi::parse(&text).map_err(|e| format!("connection {}: stored .ionapi: {e}", rec.name))?),
        None if hosting == Hosting::SelfHosted => None,
        None => return Ok(None),
    };
    let mdp = stored_mdp(vault, rec)?;
    Ok(Some(LaunchSpec {
        name: rec.name.clone(),
        hosting,
        ionapi,
        mdp,
        company: rec.settings["company"].as_u64().map(|c| c as u32),
        webhook_token: open_secret(vault, rec, "webhookToken")?.map(Secret::new),
        revision: Some(rec.updated_at.clone()),
    }))
}
