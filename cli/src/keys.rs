//! `tallytree keys show`: a unit's public key and key id.

use std::path::Path;

use anyhow::Result;
use tallytree_node::config::Config;
use tallytree_proto::SigningKey;

/// Prints the public half of a key, from a key file or a node config.
pub fn show(key: Option<&Path>, config: Option<&Path>) -> Result<()> {
    let (key_file, unit) = match (key, config) {
        (Some(k), _) => (k.to_owned(), None),
        (None, Some(c)) => {
            let config = Config::load(c)?;
            (config.key_file.clone(), Some((config.region, config.name)))
        }
        (None, None) => anyhow::bail!("pass --key FILE or --config NODE.toml"),
    };
    let key = SigningKey::load(&key_file)?;
    let public = key.public_key();
    if let Some((region, name)) = unit {
        println!("unit:       {name} ({region})");
    }
    println!("key file:   {}", key_file.display());
    println!("key id:     {}", public.key_id());
    println!("public key: {}", public.to_base64());
    print!("{}", public.to_pem());
    Ok(())
}
