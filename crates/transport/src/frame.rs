//! Length-delimited frames on QUIC streams: a 4-byte big-endian length, then
//! the payload.

use bytes::Bytes;

use crate::Error;

/// Largest frame accepted or sent; a larger announced length closes the stream
/// before any allocation, so a peer speaking nonsense cannot exhaust memory.
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// A frame's buffer starts this large and doubles as its bytes arrive.
const GROW_FROM: usize = 64 << 10;

/// Sends frames on a stream.
#[derive(Debug)]
pub struct FrameWriter {
    pub(crate) inner: quinn::SendStream,
}

/// Receives frames from a stream.
#[derive(Debug)]
pub struct FrameReader {
    pub(crate) inner: quinn::RecvStream,
}

impl FrameWriter {
    /// Sends one frame.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > MAX_FRAME_BYTES {
            return Err(Error::FrameTooLarge {
                len: payload.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        let len = (payload.len() as u32).to_be_bytes();
        self.inner
            .write_all(&len)
            .await
            .map_err(|e| Error::Stream(e.to_string()))?;
        self.inner
            .write_all(payload)
            .await
            .map_err(|e| Error::Stream(e.to_string()))
    }

    /// Finishes the stream after the frames already sent.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.inner
            .finish()
            .map_err(|e| Error::Stream(e.to_string()))
    }

    /// Writes raw bytes without framing (tests only use it to send garbage).
    #[doc(hidden)]
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.inner
            .write_all(bytes)
            .await
            .map_err(|e| Error::Stream(e.to_string()))
    }
}

impl FrameReader {
    /// Receives the next frame; `Ok(None)` when the peer finished the stream.
    pub async fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        let mut len = [0u8; 4];
        match self.inner.read_exact(&mut len).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(e) => return Err(Error::Stream(e.to_string())),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME_BYTES {
            // Tell the peer why, then give up on this stream only.
            let _ = self.inner.stop(quinn::VarInt::from_u32(1));
            return Err(Error::FrameTooLarge {
                len,
                max: MAX_FRAME_BYTES,
            });
        }
        // Grow with what actually arrives (doubling from 64 KiB), so a peer
        // announcing large frames and sending little holds little memory.
        let mut buf: Vec<u8> = Vec::new();
        while buf.len() < len {
            let start = buf.len();
            let step = (len - start).min(start.max(GROW_FROM));
            buf.resize(start + step, 0);
            self.inner
                .read_exact(&mut buf[start..])
                .await
                .map_err(|e| Error::Stream(e.to_string()))?;
        }
        Ok(Some(Bytes::from(buf)))
    }
}
