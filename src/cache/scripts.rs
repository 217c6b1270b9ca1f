//! The compare-and-set script that keeps a deferred write from putting an older copy over a newer
//! one. A read remembers the catalog version its rows came from; its write-back is refused when
//! Redis already holds something newer. The script touches ONE key, so that it runs unchanged on
//! a Redis Cluster (where a script's keys must share a slot).

use redis::Script;

/// Two forms, in one script so that Redis holds both or neither: a writer sends a batch's keys and
/// its new token in one pipeline of EVALSHAs, and when Redis has forgotten its scripts (a restart,
/// a failover, `SCRIPT FLUSH`) they fail together and are sent again with the source, the token
/// last; the token can never be set before the keys it announces.
///
/// KEYS[1] the token's hash; ARGV token, only-if-none ("1"): sets the token (noting when the hash
/// was made, when it was: see `lease`). Returns 1 when set.
///
/// KEYS[1] a versioned key (a film, the stamp or a page); ARGV value, version, ttl seconds,
/// replacing ("1": the reader found the unreadable bytes ARGV[5] there; "2": only over a key that
/// holds something, a read's stamp), ARGV[5]. Refused when
/// the key holds a newer version, unless it still holds exactly the unreadable bytes the reader
/// saw (which may look like a newer version: `{"v":99999999,` cut short). A value that is not a
/// string, or whose version cannot be read, is overwritten. Returns 1 when written, 0 when
/// refused. A page read before an order change may still be written after it: its version is
/// older than the stamp's, so readers take it for a miss. A film's write also carries ARGV[6] the
/// catalog version its rows were read at, ARGV[7] when that read began (Unix ms), ARGV[8] the
/// oldest such a read may be, and on one Redis KEYS[2] the stamp: when the film's key is empty it
/// is refused if older than that, or than the stamp, or when there is no stamp (see `batch::Empty`).
pub const SET_VERSIONED: &str = concat!(
    "if #ARGV == 2 then\n",
    include_str!("lua/now.lua"),
    include_str!("lua/born.lua"),
    include_str!("lua/set_token.lua"),
    "end\n",
    include_str!("lua/set_versioned.lua")
);

pub struct Scripts {
    pub set_versioned: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self { set_versioned: Script::new(SET_VERSIONED) }
    }
}
