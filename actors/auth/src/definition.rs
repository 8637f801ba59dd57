//! How the auth service declares itself to a node.

use std::time::Duration;

use emporium_cluster::{NodeSetup, ServiceDefinition};
use futures::future::LocalBoxFuture;

use crate::options::{AuthOptions, ENV_ADMIN_PASSWORD, ENV_JWT_PRIVATE_KEY};
use crate::secret::SecretString;
use crate::settings::AuthSettings;
use crate::{SigningKeySource, openapi, routes};

/// The `auth` service: users, passwords and tokens.
pub fn definition() -> ServiceDefinition {
    ServiceDefinition::new("auth", "users, passwords and tokens", start_on_node)
        .with_settings::<AuthSettings>()
        .with_routes(routes, openapi)
}

fn start_on_node(setup: &mut NodeSetup) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        let settings = setup.settings::<AuthSettings>();
        let mut options = AuthOptions::new(setup.database("auth").await?, setup.data_dir());
        if let Some(pem) = setup.secret(ENV_JWT_PRIVATE_KEY)? {
            options.signing_key = SigningKeySource::Pem(SecretString::new(pem));
        }
        options.admin_password = setup.secret(ENV_ADMIN_PASSWORD)?.map(SecretString::new);
        options.access_token_lifetime = Duration::from_secs(settings.access_token_lifetime_secs);
        options.refresh_token_lifetime = Duration::from_secs(settings.refresh_token_lifetime_secs);
        options.key_rotation_min_interval = Duration::from_secs(settings.key_rotation_min_interval_secs);
        options.bus = Some(emporium_bus::node_bus(setup).await?);
        let (handle, generated_password) = crate::start_with_admin_password(setup.context(), options).await?;
        setup.node().add_service(handle);
        if let Some(password) = generated_password {
            // On standard error, apart from the JSON logs, once the node is ready.
            setup.node().after_ready(Box::new(move || {
                eprintln!("{}", crate::admin_password_notice(crate::CREATED_HEADLINE, &password));
            }));
        }
        Ok(())
    })
}
