//! The bytes of the proof protocol: requests, responses and announcements. Pure; every length is checked
//! against its cap before anything is allocated or read.
//!
//! - request: `kind u8` then its fields (fixed width, little-endian), at most [`MAX_REQUEST_BYTES`];
//! - response: `status u8` (`0` found, `1` not held, `2` busy); when found, `count u8` items, each
//!   `len u32` + bytes (`len ≤` [`MAX_ITEM_BYTES`], all items together `≤` [`MAX_RESPONSE_BYTES`]);
//! - announcement: `len u32` + one head proof (`≤` [`MAX_ITEM_BYTES`]).
//!
//! The items are opaque here (the light client's proof encoding); the node verifies them before it keeps,
//! serves or acts on one.

/// Largest request (kind + product + sequence).
pub const MAX_REQUEST_BYTES: usize = 64;
/// Largest single item: a head or release proof, a bootstrap, or one period's committee update (a mainnet
/// update is about 27 KB).
pub const MAX_ITEM_BYTES: usize = 128 << 10;
/// Largest whole response.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Most periods one request may ask for.
pub const MAX_PERIODS: u8 = 16;

/// What a peer may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProofRequest {
    /// The light-client bootstrap of a checkpoint (a beacon block root), as a committee chain.
    Bootstrap { checkpoint: [u8; 32] },
    /// The committee updates of periods `from..from + count`, one committee chain (without bootstrap) each.
    Updates { from: u64, count: u8 },
    /// The newest head proof the peer holds for a product.
    Head { product: [u8; 32] },
    /// The release proof of one release.
    Release { product: [u8; 32], sequence: u64 },
}

/// What a peer answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofResponse {
    Found(Vec<Vec<u8>>),
    NotHeld,
    Busy,
}

/// Why bytes of the protocol were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("unknown request kind {0}")]
    UnknownKind(u8),
    #[error("unknown response status {0}")]
    UnknownStatus(u8),
    #[error("{what} is {len} bytes, the limit is {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("truncated reading {0}")]
    Truncated(&'static str),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("asked for {count} periods, at most {max} per request")]
    TooManyPeriods { count: u8, max: u8 },
    #[error("{count} items answer a request for at most {max}")]
    TooManyItems { count: usize, max: usize },
}

impl ProofRequest {
    /// The most items an answer to this request may hold.
    pub fn max_items(&self) -> usize {
        match self {
            ProofRequest::Updates { count, .. } => usize::from(*count),
            _ => 1,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_REQUEST_BYTES);
        match self {
            ProofRequest::Bootstrap { checkpoint } => {
                out.push(1);
                out.extend_from_slice(checkpoint);
            }
            ProofRequest::Updates { from, count } => {
                out.push(2);
                out.extend_from_slice(&from.to_le_bytes());
                out.push(*count);
            }
            ProofRequest::Head { product } => {
                out.push(3);
                out.extend_from_slice(product);
            }
            ProofRequest::Release { product, sequence } => {
                out.push(4);
                out.extend_from_slice(product);
                out.extend_from_slice(&sequence.to_le_bytes());
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ProofRequest, WireError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(WireError::TooLarge {
                what: "request",
                len: bytes.len(),
                max: MAX_REQUEST_BYTES,
            });
        }
        let (&kind, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        let mut r = Cursor(rest);
        let req = match kind {
            1 => ProofRequest::Bootstrap {
                checkpoint: r.array("checkpoint")?,
            },
            2 => {
                let from = u64::from_le_bytes(r.array("from")?);
                let [count] = r.array::<1>("count")?;
                if count > MAX_PERIODS {
                    return Err(WireError::TooManyPeriods {
                        count,
                        max: MAX_PERIODS,
                    });
                }
                ProofRequest::Updates { from, count }
            }
            3 => ProofRequest::Head {
                product: r.array("product")?,
            },
            4 => ProofRequest::Release {
                product: r.array("product")?,
                sequence: u64::from_le_bytes(r.array("sequence")?),
            },
            k => return Err(WireError::UnknownKind(k)),
        };
        r.finish()?;
        Ok(req)
    }
}

impl ProofResponse {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ProofResponse::NotHeld => vec![1],
            ProofResponse::Busy => vec![2],
            ProofResponse::Found(items) => {
                let mut out = vec![0, items.len().min(255) as u8];
                for item in items.iter().take(255) {
                    out.extend_from_slice(&(item.len() as u32).to_le_bytes());
                    out.extend_from_slice(item);
                }
                out
            }
        }
    }

    /// Decode an answer to `request`: the item count and every length are checked before they are used.
    pub fn decode(bytes: &[u8], request: &ProofRequest) -> Result<ProofResponse, WireError> {
        if bytes.len() > MAX_RESPONSE_BYTES + 8 {
            return Err(WireError::TooLarge {
                what: "response",
                len: bytes.len(),
                max: MAX_RESPONSE_BYTES,
            });
        }
        let (&status, rest) = bytes.split_first().ok_or(WireError::Empty)?;
        let mut r = Cursor(rest);
        let response = match status {
            0 => {
                let [count] = r.array::<1>("count")?;
                let count = usize::from(count);
                if count > request.max_items() {
                    return Err(WireError::TooManyItems {
                        count,
                        max: request.max_items(),
                    });
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = u32::from_le_bytes(r.array("item length")?) as usize;
                    items.push(r.take(len, MAX_ITEM_BYTES, "item")?.to_vec());
                }
                ProofResponse::Found(items)
            }
            1 => ProofResponse::NotHeld,
            2 => ProofResponse::Busy,
            s => return Err(WireError::UnknownStatus(s)),
        };
        r.finish()?;
        Ok(response)
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let bytes = self.take(N, N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn take(&mut self, len: usize, max: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if len > max {
            return Err(WireError::TooLarge {
                what: field,
                len,
                max,
            });
        }
        if self.0.len() < len {
            return Err(WireError::Truncated(field));
        }
        let (head, tail) = self.0.split_at(len);
        self.0 = tail;
        Ok(head)
    }

    fn finish(&self) -> Result<(), WireError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn requests() -> Vec<ProofRequest> {
        vec![
            ProofRequest::Bootstrap { checkpoint: [7; 32] },
            ProofRequest::Updates { from: 9, count: 3 },
            ProofRequest::Head { product: [1; 32] },
            ProofRequest::Release {
                product: [2; 32],
                sequence: 5,
            },
        ]
    }

    #[test]
    fn requests_and_responses_round_trip() {
        for req in requests() {
            assert_eq!(ProofRequest::decode(&req.encode()), Ok(req));
            for resp in [
                ProofResponse::NotHeld,
                ProofResponse::Busy,
                ProofResponse::Found(vec![vec![1, 2, 3]; req.max_items()]),
            ] {
                assert_eq!(ProofResponse::decode(&resp.encode(), &req), Ok(resp));
            }
        }
    }

    #[test]
    fn bad_requests_are_refused_by_name() {
        assert_eq!(ProofRequest::decode(&[]), Err(WireError::Empty));
        assert_eq!(ProofRequest::decode(&[9]), Err(WireError::UnknownKind(9)));
        assert_eq!(
            ProofRequest::decode(&[3, 1, 2]),
            Err(WireError::Truncated("product"))
        );
        let mut long = ProofRequest::Head { product: [1; 32] }.encode();
        long.push(0);
        assert_eq!(ProofRequest::decode(&long), Err(WireError::Trailing(1)));
        let mut many = vec![2];
        many.extend_from_slice(&0u64.to_le_bytes());
        many.push(MAX_PERIODS + 1);
        assert_eq!(
            ProofRequest::decode(&many),
            Err(WireError::TooManyPeriods {
                count: MAX_PERIODS + 1,
                max: MAX_PERIODS
            })
        );
        assert!(matches!(
            ProofRequest::decode(&[0; MAX_REQUEST_BYTES + 1]),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_claimed_length_over_the_cap_is_refused_before_reading() {
        let req = ProofRequest::Head { product: [1; 32] };
        let mut bytes = vec![0, 1];
        bytes.extend_from_slice(&(u32::MAX).to_le_bytes());
        assert_eq!(
            ProofResponse::decode(&bytes, &req),
            Err(WireError::TooLarge {
                what: "item",
                len: u32::MAX as usize,
                max: MAX_ITEM_BYTES
            })
        );
        let two = ProofResponse::Found(vec![vec![1], vec![2]]).encode();
        assert_eq!(
            ProofResponse::decode(&two, &req),
            Err(WireError::TooManyItems { count: 2, max: 1 })
        );
        assert_eq!(
            ProofResponse::decode(&[7], &req),
            Err(WireError::UnknownStatus(7))
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ProofRequest::decode(&bytes);
            for req in requests() {
                let _ = ProofResponse::decode(&bytes, &req);
            }
        }
    }
}
