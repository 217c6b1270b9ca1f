//! The two compare-and-set scripts that keep a deferred write from putting an older copy over a
//! newer one. A read remembers the catalog version its rows came from; its write-back is refused
//! when Redis already holds something newer.

use redis::Script;

/// KEYS[1] a versioned key; ARGV value, version, ttl seconds, replacing ("1": the reader found the
/// unreadable bytes ARGV[5] there), ARGV[5]. Refused when the key holds a newer version, unless it
/// still holds exactly the unreadable bytes the reader saw (which may look like a newer version:
/// `{"v":99999999,` cut short). A value that is not a string, or whose version cannot be read, is
/// overwritten. Returns 1 when written, 0 when refused.
pub const SET_VERSIONED: &str = r#"
local ok, cur = pcall(redis.call, 'GET', KEYS[1])
if ok and cur and not (ARGV[4] == '1' and cur == ARGV[5]) then
  local v = tonumber(string.match(cur, '^{"v":(%d+)'))
  if v and v > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"#;

/// KEYS[1] a page key, KEYS[2] the set of page keys; ARGV value (`{"v":order version,…}`), the
/// order version the page was read at, ttl seconds, ttl of the set. Refused when the key already
/// holds the page at a newer order version; otherwise the page is written and recorded in the set
/// that the sweep walks. A page read before an order change may still be written after it: its
/// version is older than the stamp's, so readers take it for a miss.
pub const SET_PAGE: &str = r#"
local ok, cur = pcall(redis.call, 'GET', KEYS[1])
if ok and cur then
  local v = tonumber(string.match(cur, '^{"v":(%d+)'))
  if v and v > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"#;

/// Every script's source, for SCRIPT LOAD after Redis has forgotten them.
pub const ALL: [&str; 2] = [SET_VERSIONED, SET_PAGE];

pub struct Scripts {
    pub set_versioned: Script,
    pub set_page: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Self { set_versioned: Script::new(SET_VERSIONED), set_page: Script::new(SET_PAGE) }
    }
}
