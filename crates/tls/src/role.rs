//! What a certificate is allowed to be: a cluster node or a client.

use std::fmt;
use std::str::FromStr;

use x509_parser::certificate::X509Certificate;

use crate::Error;

/// The role a certificate grants, encoded in its extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A cluster node: EKU serverAuth + clientAuth (nodes dial each other).
    Node,
    /// A client: EKU clientAuth only.
    Client,
}

impl Role {
    /// The lowercase name used on the command line and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Client => "client",
        }
    }

    /// Derives the role from a parsed certificate's extended key usage.
    ///
    /// Anything short of serverAuth + clientAuth is a client: a certificate
    /// without EKU must not be mistaken for a node, which can do more.
    pub(crate) fn from_x509(cert: &X509Certificate<'_>) -> Self {
        match cert.extended_key_usage() {
            Ok(Some(eku)) if eku.value.server_auth && eku.value.client_auth => Self::Node,
            _ => Self::Client,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "node" => Ok(Self::Node),
            "client" => Ok(Self::Client),
            _ => Err(Error::UnknownRole(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_display_and_from_str_round_trip() {
        for role in [Role::Node, Role::Client] {
            assert_eq!(role.to_string().parse::<Role>().ok(), Some(role));
        }
        assert_eq!("NODE".parse::<Role>().ok(), Some(Role::Node));
        assert!(matches!(
            "admin".parse::<Role>(),
            Err(Error::UnknownRole(_))
        ));
    }
}
