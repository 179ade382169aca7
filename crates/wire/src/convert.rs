//! Conversions between wire messages and domain types.

use vergent_hlc::Timestamp;
use vergent_types::{NodeId, NodeIdError, Version};

use crate::api::v1 as pb;

impl From<&Version> for pb::Version {
    fn from(v: &Version) -> Self {
        Self {
            hlc: v.hlc.as_u64(),
            origin: v.origin.to_string(),
        }
    }
}

impl TryFrom<&pb::Version> for Version {
    type Error = NodeIdError;
    fn try_from(v: &pb::Version) -> Result<Self, Self::Error> {
        Ok(Self::new(
            Timestamp::from_u64(v.hlc),
            NodeId::new(v.origin.clone())?,
        ))
    }
}

impl pb::ErrorCode {
    /// Reads the error code a server attached to a failed call, if any.
    pub fn from_status(status: &tonic::Status) -> Option<Self> {
        let raw = status.metadata().get(crate::ERROR_CODE_METADATA)?;
        Self::from_str_name(raw.to_str().ok()?)
    }

    /// Attaches this code to a status as response metadata.
    pub fn attach(self, mut status: tonic::Status) -> tonic::Status {
        if let Ok(v) = self.as_str_name().parse() {
            status.metadata_mut().insert(crate::ERROR_CODE_METADATA, v);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_round_trips_through_the_wire_type() {
        let v = Version::new(
            Timestamp::from_u64(42 << 16 | 3),
            NodeId::new("n-1").expect("id"),
        );
        let wire = pb::Version::from(&v);
        assert_eq!(Version::try_from(&wire), Ok(v));
    }

    #[test]
    fn a_wire_version_with_a_bad_origin_is_rejected() {
        let wire = pb::Version {
            hlc: 1,
            origin: "bad id".into(),
        };
        assert!(Version::try_from(&wire).is_err());
    }

    #[test]
    fn error_code_survives_a_trip_through_status_metadata() {
        let st = pb::ErrorCode::ValueTooLarge.attach(tonic::Status::invalid_argument("big"));
        assert_eq!(
            pb::ErrorCode::from_status(&st),
            Some(pb::ErrorCode::ValueTooLarge)
        );
        assert_eq!(
            pb::ErrorCode::from_status(&tonic::Status::internal("x")),
            None
        );
    }
}
