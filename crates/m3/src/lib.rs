//! Client for Infor M3 behind the ION API gateway: `.ionapi` credentials, the OAuth2 password
//! grant, MI REST v2 transactions and `EXPORTMI/Select`.

pub mod client;
pub mod error;
pub mod ionapi;
pub mod mdp;
pub mod secret;

pub use client::{ClientOptions, M3Client, MdpEndpoint, Record};
pub use error::M3Error;
pub use ionapi::{IonApi, IonApiError};
pub use secret::Secret;
