//! Friends-only admission ([`super::HostOptions::friends_only`]): a joiner is admitted when the
//! host's `profile.json` lists them and their own `profile.json`, replicated from them on the
//! joining connection, lists the host (docs/FRIENDS.md).

use std::collections::HashSet;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{FRIEND_ARCHIVE_FRAME_BYTES, MAX_FRAME_BYTES, MAX_FRIEND_ARCHIVE_READS};
use crate::identity::DatUrl;
use crate::net::Connection;
use crate::schema::Profile;

/// Who may join: everyone, or the host's mutual friends.
pub(super) struct Policy {
    /// With friends-only: the identity keys the host's profile lists.
    friends: Option<HashSet<[u8; 32]>>,
    /// The host's identity URL, which a friend's profile must list.
    me: String,
    /// Turns to read a friends-only joiner's archive with large records.
    large_frames: Semaphore,
}

impl Policy {
    /// Everyone may join, or (with `friends_only`) the friends `profile` lists and who list
    /// `me` (the host's identity URL) back.
    pub(super) fn new(friends_only: bool, profile: Option<&Profile>, me: String) -> Self {
        let friends = friends_only.then(|| {
            profile
                .map(|p| p.friends.as_slice())
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f.parse::<DatUrl>().ok().map(|u| *u.key.as_bytes()))
                .collect()
        });
        Policy {
            friends,
            me,
            large_frames: Semaphore::new(MAX_FRIEND_ARCHIVE_READS),
        }
    }

    /// Whether the joiner `peer` (`dat://<hex>`, the identity its offer is signed with) may
    /// join: always without friends-only; else when the host lists them and their own profile,
    /// read from them on `conn` within `timeout` (at most 5 s), lists the host.
    pub(super) async fn admits(&self, conn: &Connection, peer: &str, timeout: Duration) -> bool {
        let Some(friends) = &self.friends else {
            return true;
        };
        let Ok(url) = peer.parse::<DatUrl>() else {
            return false;
        };
        if !friends.contains(url.key.as_bytes()) {
            return false;
        }
        // Their archive comes over this connection; a joiner that doesn't offer it isn't
        // admitted. Its profile may need records larger than the host's usual limit: a few
        // friends at a time get them.
        let deadline = crate::time::deadline_after(timeout.min(Duration::from_secs(5)));
        let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline, self.large_frames.acquire()).await
        else {
            return false;
        };
        conn.set_max_frame_bytes(FRIEND_ARCHIVE_FRAME_BYTES);
        let read = crate::remote::read_archive(conn, url.identity(), deadline).await;
        conn.set_max_frame_bytes(MAX_FRAME_BYTES);
        let Ok((files, _)) = read else {
            return false;
        };
        files.profile.is_some_and(|p| p.friends.contains(&self.me))
    }
}
