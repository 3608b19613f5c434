//! Where the core's answers meet a socket. A listener's loop watches its deadlines only while
//! it waits to read; a write that waits (the peer stopped reading) must end at the same
//! deadline, or a client that sends commands and never reads their answers holds its slot, and
//! dodges eviction and shutdown, for ever.

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::core::RtmpCore;
use crate::error::{Error, Result};

/// Write `bytes` to the peer, but not past the connection's deadline ([`RtmpCore::deadline`]);
/// past it, the limit that deadline enforces is the error.
pub async fn write_by_deadline<S: AsyncWrite + Unpin>(
    peer: &mut S,
    core: &RtmpCore,
    bytes: &[u8],
) -> Result<()> {
    let (at, limit) = core.deadline();
    match tokio::time::timeout_at(at.into(), peer.write_all(bytes)).await {
        Ok(written) => Ok(written?),
        Err(_) => Err(Error::Limit(limit)),
    }
}
