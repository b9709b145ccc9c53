//! Redis's glob matching (`stringmatchlen` in Redis 7.0's util.c), byte for byte,
//! for `SCAN ... MATCH`, `KEYS` and `CONFIG GET`.
//!
//! Supported: `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` (reversed ranges too), and `\`
//! escapes, with Redis's quirks: an unterminated `[` class ends at the pattern's
//! end, and nesting of `*` is capped so a hostile pattern cannot take exponential
//! time (Redis 7.0.10's fix, CVE-2022-36021).

/// Deepest recursion through `*` before the match is given up as failed.
const NESTING_MAX: u32 = 1000;

/// True when `string` matches `pattern` (ASCII case folding when `nocase`).
pub(crate) fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    matches(pattern, string, nocase, &mut skip_longer, 0)
}

/// The pattern's bytes before its first special character: every matching key
/// starts with them, so a shard can skip other keys before they are copied out.
pub(crate) fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    pattern.get(..end).unwrap_or_default()
}

fn fold(b: u8, nocase: bool) -> u8 {
    if nocase {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// The C code reads the pattern's NUL terminator past its end; so does this.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn matches(pat: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > NESTING_MAX {
        return false;
    }
    let (mut p, mut i) = (0usize, 0usize);
    while p < pat.len() && i < s.len() {
        match at(pat, p) {
            b'*' => {
                while p + 1 < pat.len() && at(pat, p + 1) == b'*' {
                    p += 1;
                }
                if p + 1 == pat.len() {
                    return true;
                }
                while i < s.len() {
                    let rest = pat.get(p + 1..).unwrap_or_default();
                    let tail = s.get(i..).unwrap_or_default();
                    if matches(rest, tail, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    i += 1;
                }
                // Nothing matched the rest of the pattern from anywhere in the rest of
                // the string: no earlier `*` can do better by matching more.
                *skip_longer = true;
                return false;
            }
            b'?' => i += 1,
            b'[' => {
                p += 1;
                let not = at(pat, p) == b'^';
                if not {
                    p += 1;
                }
                let c = at(s, i);
                let mut hit = false;
                loop {
                    let left = pat.len().saturating_sub(p);
                    if at(pat, p) == b'\\' && left >= 2 {
                        p += 1;
                        if at(pat, p) == c {
                            hit = true;
                        }
                    } else if at(pat, p) == b']' && left > 0 {
                        break;
                    } else if left == 0 {
                        // Unterminated class: step back onto its last byte.
                        p -= 1;
                        break;
                    } else if left >= 3 && at(pat, p + 1) == b'-' {
                        let (mut lo, mut hi) = (at(pat, p), at(pat, p + 2));
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        let (lo, hi, c) = (fold(lo, nocase), fold(hi, nocase), fold(c, nocase));
                        p += 2;
                        if c >= lo && c <= hi {
                            hit = true;
                        }
                    } else if fold(at(pat, p), nocase) == fold(c, nocase) {
                        hit = true;
                    }
                    p += 1;
                }
                if hit == not {
                    return false;
                }
                i += 1;
            }
            b => {
                let b = if b == b'\\' && pat.len() - p >= 2 {
                    p += 1;
                    at(pat, p)
                } else {
                    b
                };
                if fold(b, nocase) != fold(at(s, i), nocase) {
                    return false;
                }
                i += 1;
            }
        }
        p += 1;
        if i == s.len() {
            while at(pat, p) == b'*' && p < pat.len() {
                p += 1;
            }
            break;
        }
    }
    p >= pat.len() && i == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, string: &str) -> bool {
        string_match(pattern.as_bytes(), string.as_bytes(), false)
    }

    #[test]
    fn redis_glob_cases() {
        // From Redis's own tests (keyspace.tcl, util.c) and its documentation.
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        // Redis: the loop needs a byte of string, so "*" does not match "" (KEYS and
        // SCAN skip matching for a lone "*", so the empty key is still listed).
        assert!(!m("*", ""));
        assert!(m("**", "abc"));
        assert!(m("a*", "a"));
        assert!(m("*a*", "banana"));
        assert!(!m("*x*", "banana"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(
            m("[abc", "a"),
            "unterminated class ends at the pattern's end"
        );
        assert!(m("[\\]]", "]"));
        assert!(m("key:[0-9]*", "key:7abc"));
        assert!(m("\\", "\\"));
        assert!(m("?", "\0"));
        assert!(string_match(b"HELLO", b"hello", true));
        assert!(!m("HELLO", "hello"));
    }

    #[test]
    fn hostile_patterns_finish_quickly() {
        let pattern = "a*".repeat(50) + "b";
        let string = "a".repeat(200);
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &string));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let deep = "*?".repeat(2000);
        assert!(!m(&deep, &"x".repeat(3000)), "nesting is capped");
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"a?c"), b"a");
        assert_eq!(literal_prefix(b"plain"), b"plain");
        assert_eq!(literal_prefix(b"\\*x"), b"");
    }
}
