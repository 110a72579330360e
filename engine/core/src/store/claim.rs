//! Which pending deliveries a worker may take now: the ordering rules, shared by both backends.
//!
//! The backend reads the oldest pending deliveries of one destination (in id order) and this
//! module picks the claimable ones:
//! - [`ClaimOrder::Fifo`]: strictly oldest first; stop at the first delivery that is leased to
//!   someone else or waiting for its retry time.
//! - [`ClaimOrder::ByKey`]: the same rule per ordering key (e.g. the patient, `PID-3.1`): a
//!   waiting delivery holds back only later deliveries with its key.
//! - [`ClaimOrder::Unordered`]: any due, unleased delivery.

/// How a destination's deliveries are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOrder {
    Fifo,
    ByKey,
    Unordered,
}

/// How many pending rows to read to find `limit` claimable ones.
pub fn lookahead(limit: u32, order: ClaimOrder) -> i64 {
    match order {
        ClaimOrder::Fifo => i64::from(limit),
        ClaimOrder::ByKey | ClaimOrder::Unordered => i64::from(limit).saturating_mul(8).min(1024),
    }
}

/// The facts about one pending delivery the rules need.
#[derive(Debug, Clone)]
pub struct PendingRow<'a> {
    pub ordering_key: Option<&'a str>,
    pub next_attempt_at: i64,
    /// Some other worker holds a live lease on it.
    pub leased: bool,
}

/// Indexes (into `rows`) of the deliveries to claim, at most `limit`, in id order; and the
/// earliest time a blocking delivery becomes due, when one is waiting.
pub fn select(
    rows: &[PendingRow<'_>],
    order: ClaimOrder,
    now: i64,
    limit: usize,
) -> (Vec<usize>, Option<i64>) {
    let mut taken = Vec::new();
    let mut next_due: Option<i64> = None;
    let mut blocked_keys: Vec<Option<&str>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if taken.len() >= limit {
            break;
        }
        let key = match order {
            ClaimOrder::Fifo => None,
            ClaimOrder::ByKey => Some(row.ordering_key.unwrap_or("")),
            ClaimOrder::Unordered => {
                if !row.leased && row.next_attempt_at <= now {
                    taken.push(i);
                } else if !row.leased {
                    next_due =
                        Some(next_due.map_or(row.next_attempt_at, |d| d.min(row.next_attempt_at)));
                }
                continue;
            }
        };
        if blocked_keys.contains(&key) {
            continue;
        }
        if row.leased {
            blocked_keys.push(key);
        } else if row.next_attempt_at > now {
            next_due = Some(next_due.map_or(row.next_attempt_at, |d| d.min(row.next_attempt_at)));
            blocked_keys.push(key);
        } else {
            taken.push(i);
            continue;
        }
        if order == ClaimOrder::Fifo {
            break;
        }
    }
    (taken, next_due)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, due: i64, leased: bool) -> PendingRow<'_> {
        PendingRow {
            ordering_key: Some(key),
            next_attempt_at: due,
            leased,
        }
    }

    #[test]
    fn fifo_stops_at_the_first_waiting_delivery() {
        let rows = [row("a", 0, false), row("b", 50, false), row("c", 0, false)];
        assert_eq!(select(&rows, ClaimOrder::Fifo, 10, 10), (vec![0], Some(50)));
        let rows = [row("a", 0, true), row("c", 0, false)];
        assert_eq!(select(&rows, ClaimOrder::Fifo, 10, 10), (vec![], None));
    }

    #[test]
    fn by_key_blocks_only_the_waiting_key() {
        let rows = [
            row("p1", 50, false), // p1 waits for its retry
            row("p2", 0, false),
            row("p1", 0, false), // must not pass p1's head
            row("p3", 0, true),  // leased elsewhere
            row("p3", 0, false),
            row("p2", 0, false),
        ];
        assert_eq!(
            select(&rows, ClaimOrder::ByKey, 10, 10),
            (vec![1, 5], Some(50))
        );
    }

    #[test]
    fn unordered_takes_every_due_delivery_up_to_the_limit() {
        let rows = [
            row("a", 50, false),
            row("a", 0, false),
            row("b", 0, false),
            row("c", 0, false),
        ];
        assert_eq!(
            select(&rows, ClaimOrder::Unordered, 10, 2),
            (vec![1, 2], Some(50))
        );
    }
}
