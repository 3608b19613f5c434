//! The history a joining socket receives, capped in bytes, sans-I/O: the newest messages whose
//! JSON fits in the budget, oldest first. Without it every join (anonymous ones included) could
//! pull `historySize` × `maxMessageLength` (up to 5,000 × 10,000 characters) from the store.

use crate::protocol::ChatMessage;

/// The smallest a stored message serializes to (an id of 24 characters, empty name and
/// one-character text): no more messages than `max_bytes / MIN_MESSAGE_BYTES` can fit, so no
/// more are loaded.
pub const MIN_MESSAGE_BYTES: usize = 80;

/// How many messages to load from the store for a budget of `max_bytes`.
pub fn load_limit(history_size: u32, max_bytes: usize) -> u32 {
    let fit = u32::try_from(max_bytes / MIN_MESSAGE_BYTES).unwrap_or(u32::MAX);
    history_size.min(fit)
}

/// JSON size of a message inside the history array (its comma included).
fn json_len(message: &ChatMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, message) {
        Ok(()) => count.0 + 1,
        Err(_) => usize::MAX,
    }
}

/// The byte budget of one history read: the store walks from the newest message back and
/// stops at the first that does not fit, so it never reads far past the cap.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    max: usize,
    /// `[` and `]`, and the comma counted for the last message that has none.
    used: usize,
}

impl Budget {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max: max_bytes,
            used: 1,
        }
    }

    /// Count `message` (the next older one); false, and nothing counted, when it does not fit.
    pub fn take(&mut self, message: &ChatMessage) -> bool {
        match self.used.checked_add(json_len(message)) {
            Some(total) if total <= self.max => {
                self.used = total;
                true
            }
            _ => false,
        }
    }
}

/// The newest messages of `newest_first` that fit in `max_bytes` and number at most `limit`,
/// oldest first, and whether the byte cap cut the list short. Reads lazily: nothing past the
/// first message that does not fit is pulled from the iterator.
pub fn collect<E>(
    newest_first: impl IntoIterator<Item = Result<ChatMessage, E>>,
    limit: u32,
    max_bytes: usize,
) -> Result<Recent, E> {
    let mut budget = Budget::new(max_bytes);
    let mut messages = Vec::new();
    let mut cut = false;
    for message in newest_first {
        if messages.len() >= limit as usize {
            break;
        }
        let message = message?;
        if !budget.take(&message) {
            cut = true;
            break;
        }
        messages.push(message);
    }
    messages.reverse();
    Ok(Recent { messages, cut })
}

/// What a history read returns.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recent {
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    /// True when older messages within `limit` were left out to stay within the byte cap.
    pub cut: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn message(ts: i64, text: &str) -> ChatMessage {
        ChatMessage {
            id: format!("{:024x}", ts.max(0)),
            user_id: "u-1".into(),
            name: "Ada".into(),
            role: Role::Viewer,
            text: text.into(),
            ts,
        }
    }

    fn array_len(history: &[ChatMessage]) -> usize {
        serde_json::to_vec(history).expect("json").len()
    }

    /// `history` is oldest first, as stored.
    fn newest_within(history: Vec<ChatMessage>, max_bytes: usize) -> (Vec<ChatMessage>, usize) {
        let total = history.len();
        let recent = collect(
            history.into_iter().rev().map(Ok::<_, ()>),
            u32::MAX,
            max_bytes,
        )
        .expect("no errors");
        assert_eq!(recent.cut, recent.messages.len() < total);
        let kept = recent.messages.len();
        (recent.messages, total - kept)
    }

    #[test]
    fn a_room_full_of_maximum_length_messages_is_cut_to_the_newest_that_fit() {
        let cap = 64 * 1024;
        let history: Vec<_> = (0..5000).map(|i| message(i, &"é".repeat(10_000))).collect();
        let (kept, dropped) = newest_within(history, cap);
        assert!(array_len(&kept) <= cap, "{} bytes", array_len(&kept));
        assert_eq!(kept.len(), 3, "three 20 KB messages fit in 64 KiB");
        assert_eq!(dropped, 4997);
        assert_eq!(
            kept.iter().map(|m| m.ts).collect::<Vec<_>>(),
            [4997, 4998, 4999],
            "newest kept, oldest first"
        );
    }

    #[test]
    fn the_cap_is_exact_at_the_boundary() {
        let history: Vec<_> = (0..10).map(|i| message(i, "hello")).collect();
        let full = array_len(&history);
        let (kept, dropped) = newest_within(history.clone(), full);
        assert_eq!((kept.len(), dropped), (10, 0));
        let (kept, dropped) = newest_within(history, full - 1);
        assert_eq!((kept.len(), dropped), (9, 1));
        assert!(array_len(&kept) < full);
    }

    #[test]
    fn a_single_message_larger_than_the_cap_sends_none_and_tiny_caps_do_not_underflow() {
        let history = vec![message(1, &"x".repeat(10_000))];
        assert_eq!(newest_within(history.clone(), 1000).0.len(), 0);
        assert_eq!(newest_within(history.clone(), 0), (Vec::new(), 1));
        assert_eq!(newest_within(Vec::new(), 0), (Vec::new(), 0));
        assert_eq!(newest_within(history, usize::MAX).1, 0);
    }

    #[test]
    fn reading_stops_at_the_first_message_that_does_not_fit_and_at_the_limit() {
        let mut pulled = 0;
        let newest_first = (0..1_000_000).rev().map(|i| {
            pulled += 1;
            Ok::<_, ()>(message(i, &"x".repeat(1000)))
        });
        let recent = collect(newest_first, 5000, 4096).expect("ok");
        assert_eq!(recent.messages.len(), 3);
        assert!(recent.cut);
        assert_eq!(pulled, 4, "one message past the cap is read, no more");

        let newest_first = (0..10).rev().map(|i| Ok::<_, ()>(message(i, "hi")));
        let recent = collect(newest_first, 4, usize::MAX).expect("ok");
        assert_eq!(
            recent.messages.iter().map(|m| m.ts).collect::<Vec<_>>(),
            [6, 7, 8, 9]
        );
        assert!(!recent.cut, "the count limit is not the byte cap");

        let failing = vec![Ok(message(2, "hi")), Err("disk"), Ok(message(0, "hi"))];
        assert_eq!(collect(failing, 10, usize::MAX), Err("disk"));
    }

    #[test]
    fn the_load_limit_never_exceeds_what_could_fit() {
        let smallest = ChatMessage {
            user_id: String::new(),
            name: String::new(),
            text: String::new(),
            ..message(0, "")
        };
        assert!(
            json_len(&smallest) >= MIN_MESSAGE_BYTES,
            "{}",
            json_len(&smallest)
        );
        assert_eq!(load_limit(100, 64 * 1024), 100);
        assert_eq!(load_limit(5000, 64 * 1024), 819);
        assert_eq!(load_limit(5000, 0), 0);
        assert_eq!(load_limit(5000, usize::MAX), 5000);
    }
}
