//! Kite Connect v3 WebSocket binary frames → packets (no pyo3 here).
//!
//! A frame is a big-endian `u16` packet count, then per packet a `u16` length and that many
//! bytes. The length says what the packet holds (MARKET_FACTS §5):
//!
//! | bytes | layout                                                               |
//! |-------|----------------------------------------------------------------------|
//! | 8     | ltp: token, last price                                               |
//! | 28    | index quote: token, last price, high, low, open, close, (change)     |
//! | 32    | index full: index quote + exchange timestamp                         |
//! | 44    | quote: token, last price, last qty, avg price, volume, buy/sell qty, OHLC |
//! | 184   | full: quote + last trade time, OI, OI day high/low, exchange timestamp, 10 depth levels |
//!
//! Every integer is unsigned (as the official clients read them). Prices are integers
//! divided by a per-segment divisor (segment = `token & 0xFF`): cds 10^7, bcd and nco 10^4,
//! everything else 100.
//!
//! Framing rule, shared by both Python entry points:
//! * a frame shorter than 2 bytes is a heartbeat: no packets;
//! * a frame whose count or lengths run past its end is broken: [`Frame::parse`] rejects
//!   the whole frame (`CoreError::Invalid`), so a caller never acts on half a frame;
//! * a packet of any other length is skipped (the official clients do the same: the server
//!   may add layouts);
//! * bytes after the last declared packet are ignored.
//!
//! Every read is bounds-checked: no input can panic.

use crate::error::{CoreError, CoreResult};

/// Segment of the indices (not tradable, no volume or OI).
pub const SEGMENT_INDICES: u32 = 9;
const SEGMENT_CDS: u32 = 3;
const SEGMENT_BCD: u32 = 6;
const SEGMENT_NCO: u32 = 12;

/// Depth levels per side in a full packet.
pub const DEPTH_LEVELS: usize = 5;
const DEPTH_OFFSET: usize = 64;
const DEPTH_ENTRY_BYTES: usize = 12;

/// Packet lengths of the known layouts.
pub const LTP_LEN: usize = 8;
pub const INDEX_QUOTE_LEN: usize = 28;
pub const INDEX_FULL_LEN: usize = 32;
pub const QUOTE_LEN: usize = 44;
pub const FULL_LEN: usize = 184;

/// Subscription mode a packet was sent in; the code is what `decode_kite_ticks` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ltp = 1,
    Quote = 2,
    Full = 3,
}

impl Mode {
    /// The mode's name on the wire and in pykiteconnect's ticks.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ltp => "ltp",
            Self::Quote => "quote",
            Self::Full => "full",
        }
    }
}

/// Which fields a packet carries, from its length. The discriminants index per-layout
/// tables in the binding (`Layout as usize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Ltp = 0,
    IndexQuote = 1,
    IndexFull = 2,
    Quote = 3,
    Full = 4,
}

impl Layout {
    /// The layout of a packet of `len` bytes, `None` for an unknown length.
    pub fn from_len(len: usize) -> Option<Self> {
        match len {
            LTP_LEN => Some(Self::Ltp),
            INDEX_QUOTE_LEN => Some(Self::IndexQuote),
            INDEX_FULL_LEN => Some(Self::IndexFull),
            QUOTE_LEN => Some(Self::Quote),
            FULL_LEN => Some(Self::Full),
            _ => None,
        }
    }

    /// The subscription mode of this layout.
    pub fn mode(self) -> Mode {
        match self {
            Self::Ltp => Mode::Ltp,
            Self::IndexQuote | Self::Quote => Mode::Quote,
            Self::IndexFull | Self::Full => Mode::Full,
        }
    }

    /// An index layout (28 or 32 bytes).
    pub fn is_index(self) -> bool {
        matches!(self, Self::IndexQuote | Self::IndexFull)
    }

    /// Carries OHLC and thus `change` (every layout but ltp).
    pub fn has_ohlc(self) -> bool {
        !matches!(self, Self::Ltp)
    }

    /// Carries volume, traded quantities and the average price (44 and 184 bytes).
    pub fn has_volume(self) -> bool {
        matches!(self, Self::Quote | Self::Full)
    }

    /// Carries an exchange timestamp (32 and 184 bytes).
    pub fn has_exchange_timestamp(self) -> bool {
        matches!(self, Self::IndexFull | Self::Full)
    }

    /// Carries last trade time, OI and depth (184 bytes).
    pub fn has_depth(self) -> bool {
        matches!(self, Self::Full)
    }
}

/// One level of market depth.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DepthLevel {
    pub quantity: u32,
    pub price: f64,
    pub orders: u16,
}

/// A decoded packet. Fields its layout does not carry are 0 (see [`Layout`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Packet {
    pub layout: Layout,
    pub instrument_token: u32,
    pub last_price: f64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    /// Previous day's close.
    pub close: f64,
    pub last_traded_quantity: u32,
    pub average_traded_price: f64,
    /// The day's cumulative volume.
    pub volume_traded: u32,
    pub total_buy_quantity: u32,
    pub total_sell_quantity: u32,
    /// Unix seconds.
    pub last_trade_time_s: u32,
    pub oi: u32,
    pub oi_day_high: u32,
    pub oi_day_low: u32,
    /// Unix seconds.
    pub exchange_timestamp_s: u32,
    /// Best first: `buy` bids, `sell` asks.
    pub buy: [DepthLevel; DEPTH_LEVELS],
    pub sell: [DepthLevel; DEPTH_LEVELS],
}

impl Packet {
    /// `token & 0xFF`.
    pub fn segment(&self) -> u32 {
        self.instrument_token & 0xFF
    }

    /// False for the indices segment.
    pub fn is_tradable(&self) -> bool {
        self.segment() != SEGMENT_INDICES
    }

    /// Percent change of the last price against the previous close, 0 when the close is 0
    /// (pykiteconnect's definition; the wire's own change field is ignored, as there).
    pub fn change(&self) -> f64 {
        if self.close == 0.0 {
            0.0
        } else {
            (self.last_price - self.close) * 100.0 / self.close
        }
    }

    /// Decode one packet; `None` for a length of no known layout.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let layout = Layout::from_len(bytes.len())?;
        let token = u32_at(bytes, 0);
        let div = divisor(token & 0xFF);
        let price = |off: usize| f64::from(u32_at(bytes, off)) / div;
        let mut p = Self {
            layout,
            instrument_token: token,
            last_price: price(4),
            open: 0.0,
            high: 0.0,
            low: 0.0,
            close: 0.0,
            last_traded_quantity: 0,
            average_traded_price: 0.0,
            volume_traded: 0,
            total_buy_quantity: 0,
            total_sell_quantity: 0,
            last_trade_time_s: 0,
            oi: 0,
            oi_day_high: 0,
            oi_day_low: 0,
            exchange_timestamp_s: 0,
            buy: [DepthLevel::default(); DEPTH_LEVELS],
            sell: [DepthLevel::default(); DEPTH_LEVELS],
        };
        match layout {
            Layout::Ltp => {}
            Layout::IndexQuote | Layout::IndexFull => {
                p.high = price(8);
                p.low = price(12);
                p.open = price(16);
                p.close = price(20);
                if layout == Layout::IndexFull {
                    p.exchange_timestamp_s = u32_at(bytes, 28);
                }
            }
            Layout::Quote | Layout::Full => {
                p.last_traded_quantity = u32_at(bytes, 8);
                p.average_traded_price = price(12);
                p.volume_traded = u32_at(bytes, 16);
                p.total_buy_quantity = u32_at(bytes, 20);
                p.total_sell_quantity = u32_at(bytes, 24);
                p.open = price(28);
                p.high = price(32);
                p.low = price(36);
                p.close = price(40);
                if layout == Layout::Full {
                    p.last_trade_time_s = u32_at(bytes, 44);
                    p.oi = u32_at(bytes, 48);
                    p.oi_day_high = u32_at(bytes, 52);
                    p.oi_day_low = u32_at(bytes, 56);
                    p.exchange_timestamp_s = u32_at(bytes, 60);
                    let level = |i: usize| {
                        let off = DEPTH_OFFSET + i * DEPTH_ENTRY_BYTES;
                        DepthLevel {
                            quantity: u32_at(bytes, off),
                            price: price(off + 4),
                            orders: u16_at(bytes, off + 8),
                        }
                    };
                    p.buy = std::array::from_fn(level);
                    p.sell = std::array::from_fn(|i| level(i + DEPTH_LEVELS));
                }
            }
        }
        Some(p)
    }
}

/// Price divisor of a segment.
fn divisor(segment: u32) -> f64 {
    match segment {
        SEGMENT_CDS => 10_000_000.0,
        SEGMENT_BCD | SEGMENT_NCO => 10_000.0,
        _ => 100.0,
    }
}

/// Big-endian u32 at `off`; 0 past the end (callers check lengths first, so never taken).
#[inline(always)]
fn u32_at(bytes: &[u8], off: usize) -> u32 {
    bytes
        .get(off..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map_or(0, |b| u32::from_be_bytes(*b))
}

/// Big-endian u16 at `off`; 0 past the end.
#[inline(always)]
fn u16_at(bytes: &[u8], off: usize) -> u16 {
    bytes
        .get(off..)
        .and_then(<[u8]>::first_chunk::<2>)
        .map_or(0, |b| u16::from_be_bytes(*b))
}

/// A frame whose framing has been checked: every declared packet lies inside it.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    data: &'a [u8],
    count: usize,
    known: usize,
}

impl<'a> Frame<'a> {
    /// Check the framing of `data` (see the module docs for the rule).
    ///
    /// # Errors
    /// `CoreError::Invalid` when the declared packets run past the end of the frame.
    pub fn parse(data: &'a [u8]) -> CoreResult<Self> {
        if data.len() < 2 {
            return Ok(Self {
                data,
                count: 0,
                known: 0,
            });
        }
        let count = usize::from(u16_at(data, 0));
        let mut off = 2;
        let mut known = 0;
        for i in 0..count {
            let Some(len) = data
                .get(off..)
                .and_then(<[u8]>::first_chunk::<2>)
                .map(|b| usize::from(u16::from_be_bytes(*b)))
            else {
                return Err(CoreError::invalid(format!(
                    "kite frame truncated: packet {i} of {count} has no length at byte {off} \
                     (frame is {} bytes)",
                    data.len()
                )));
            };
            let end = off + 2 + len;
            if end > data.len() {
                return Err(CoreError::invalid(format!(
                    "kite frame truncated: packet {i} of {count} needs {len} bytes at byte {}, \
                     {} left (frame is {} bytes)",
                    off + 2,
                    data.len() - (off + 2),
                    data.len()
                )));
            }
            known += usize::from(Layout::from_len(len).is_some());
            off = end;
        }
        Ok(Self { data, count, known })
    }

    /// Packets the frame declares, unknown lengths included.
    pub fn declared(&self) -> usize {
        self.count
    }

    /// Packets of a known layout: what [`Frame::packets`] yields.
    pub fn len(&self) -> usize {
        self.known
    }

    /// No packet of a known layout (a heartbeat, for one).
    pub fn is_empty(&self) -> bool {
        self.known == 0
    }

    /// The decodable packets in frame order.
    pub fn packets(&self) -> Packets<'a> {
        Packets {
            data: self.data,
            off: 2,
            left: self.count,
        }
    }
}

/// Iterator over the packets of a [`Frame`], skipping unknown lengths.
#[derive(Clone, Debug)]
pub struct Packets<'a> {
    data: &'a [u8],
    off: usize,
    left: usize,
}

impl Iterator for Packets<'_> {
    type Item = Packet;

    fn next(&mut self) -> Option<Packet> {
        while self.left > 0 {
            self.left -= 1;
            let len = usize::from(u16_at(self.data, self.off));
            let start = self.off + 2;
            self.off = start + len;
            // The frame was checked, so `get` cannot fail; if it did, stop rather than panic.
            let bytes = self.data.get(start..start + len)?;
            if let Some(p) = Packet::decode(bytes) {
                return Some(p);
            }
        }
        None
    }
}

/// Decode a whole frame into packets (skipping unknown lengths).
///
/// # Errors
/// As [`Frame::parse`].
pub fn decode_frame(data: &[u8]) -> CoreResult<Vec<Packet>> {
    let frame = Frame::parse(data)?;
    Ok(frame.packets().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn be(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn frame(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = (packets.len() as u16).to_be_bytes().to_vec();
        for p in packets {
            out.extend((p.len() as u16).to_be_bytes());
            out.extend(p);
        }
        out
    }

    fn full_packet(token: u32) -> Vec<u8> {
        let mut p = be(&[
            token,
            250_000,
            7,
            249_950,
            1_234_567,
            800,
            900,
            248_000,
            251_000,
            247_500,
            245_000,
            1_795_400_000,
            5_000,
            5_500,
            4_500,
            1_795_400_001,
        ]);
        for i in 0..10u32 {
            p.extend(be(&[100 + i]));
            p.extend(be(&[if i < 5 {
                249_990 - i * 5
            } else {
                250_000 + (i - 5) * 5
            }]));
            p.extend((3 + i as u16).to_be_bytes());
            p.extend([0, 0]);
        }
        assert_eq!(p.len(), FULL_LEN);
        p
    }

    #[test]
    fn ltp_packet_of_each_divisor() {
        let cases = [
            (408_065, 123_456, 1_234.56),
            (1_001 * 256 + 3, 834_512_345, 83.451_234_5),
            (77 * 256 + 6, 834_512, 83.4512),
            (77 * 256 + 12, 834_512, 83.4512),
            (256_265, 2_450_005, 24_500.05),
        ];
        for (token, raw, price) in cases {
            let data = frame(&[be(&[token, raw])]);
            let ps = decode_frame(&data).unwrap();
            assert_eq!(ps.len(), 1);
            assert_eq!(ps[0].layout, Layout::Ltp);
            assert_eq!(ps[0].instrument_token, token);
            assert_eq!(ps[0].last_price, price);
            assert_eq!(ps[0].change(), 0.0);
        }
    }

    #[test]
    fn index_packets_read_high_low_open_close() {
        let quote = be(&[
            256_265, 2_450_000, 2_460_000, 2_430_000, 2_440_000, 2_400_000, 0,
        ]);
        let mut full = quote.clone();
        full.extend(be(&[1_795_400_002]));
        let ps = decode_frame(&frame(&[quote, full])).unwrap();
        assert_eq!(ps[0].layout, Layout::IndexQuote);
        assert_eq!(ps[1].layout, Layout::IndexFull);
        for p in &ps {
            assert!(!p.is_tradable());
            assert_eq!(
                (p.high, p.low, p.open, p.close),
                (24_600.0, 24_300.0, 24_400.0, 24_000.0)
            );
            assert_eq!(p.change(), (24_500.0 - 24_000.0) * 100.0 / 24_000.0);
            assert_eq!(p.volume_traded, 0);
        }
        assert_eq!(ps[0].exchange_timestamp_s, 0);
        assert_eq!(ps[1].exchange_timestamp_s, 1_795_400_002);
        assert_eq!(ps[1].layout.mode(), Mode::Full);
    }

    #[test]
    fn full_packet_fields_and_depth() {
        let token = 12_345 * 256 + 2;
        let ps = decode_frame(&frame(&[full_packet(token)])).unwrap();
        let p = &ps[0];
        assert!(p.is_tradable());
        assert_eq!(p.layout.mode(), Mode::Full);
        assert_eq!(p.last_price, 2_500.0);
        assert_eq!(p.last_traded_quantity, 7);
        assert_eq!(p.average_traded_price, 2_499.5);
        assert_eq!(p.volume_traded, 1_234_567);
        assert_eq!((p.total_buy_quantity, p.total_sell_quantity), (800, 900));
        assert_eq!(
            (p.open, p.high, p.low, p.close),
            (2_480.0, 2_510.0, 2_475.0, 2_450.0)
        );
        assert_eq!(p.last_trade_time_s, 1_795_400_000);
        assert_eq!((p.oi, p.oi_day_high, p.oi_day_low), (5_000, 5_500, 4_500));
        assert_eq!(p.exchange_timestamp_s, 1_795_400_001);
        assert_eq!(
            p.buy[0],
            DepthLevel {
                quantity: 100,
                price: 2_499.9,
                orders: 3
            }
        );
        assert_eq!(p.buy[4].price, 2_499.7);
        assert_eq!(
            p.sell[0],
            DepthLevel {
                quantity: 105,
                price: 2_500.0,
                orders: 8
            }
        );
        assert_eq!(p.sell[4].orders, 12);
    }

    #[test]
    fn quote_packet_has_no_full_fields() {
        let mut q = full_packet(408_065);
        q.truncate(QUOTE_LEN);
        let p = decode_frame(&frame(&[q])).unwrap()[0];
        assert_eq!(p.layout, Layout::Quote);
        assert_eq!(p.volume_traded, 1_234_567);
        assert_eq!(
            (p.last_trade_time_s, p.oi, p.exchange_timestamp_s),
            (0, 0, 0)
        );
        assert_eq!(p.buy[0], DepthLevel::default());
    }

    #[test]
    fn heartbeats_and_empty_frames_have_no_packets() {
        for data in [&[][..], &[0][..], &[0, 0][..], &[0, 0, 9, 9][..]] {
            let f = Frame::parse(data).unwrap();
            assert!(f.is_empty());
            assert_eq!(f.packets().count(), 0);
        }
    }

    #[test]
    fn unknown_lengths_are_skipped_and_trailing_bytes_ignored() {
        let mut data = frame(&[vec![1, 2, 3], be(&[408_065, 100]), vec![], vec![0; 50]]);
        data.extend([7, 7, 7]);
        let f = Frame::parse(&data).unwrap();
        assert_eq!((f.declared(), f.len()), (4, 1));
        let ps: Vec<_> = f.packets().collect();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].last_price, 1.0);
    }

    #[test]
    fn broken_framing_is_an_error() {
        let good = frame(&[be(&[408_065, 100]), full_packet(408_065)]);
        // Every strict prefix that still has a count misses part of a declared packet.
        for cut in 2..good.len() {
            let err = Frame::parse(&good[..cut]).unwrap_err();
            assert!(err.to_string().starts_with("kite frame truncated"), "{err}");
        }
        // A count larger than the packets present.
        let mut more = good.clone();
        more[1] = 3;
        assert!(Frame::parse(&more).is_err());
        // A length running past the end.
        let bad = [0, 1, 0, 200, 1, 2, 3];
        assert!(Frame::parse(&bad).is_err());
    }

    /// xorshift64*: deterministic bytes without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let valid = frame(&[
            be(&[408_065, 100]),
            full_packet(2_050),
            be(&[256_265, 1, 2, 3, 4, 5, 6]),
        ]);
        for round in 0..20_000 {
            let data: Vec<u8> = if round % 2 == 0 {
                let n = (rng.next() % 400) as usize;
                (0..n).map(|_| rng.next() as u8).collect()
            } else {
                let mut d = valid.clone();
                for _ in 0..=(rng.next() % 4) {
                    let i = (rng.next() as usize) % d.len();
                    d[i] = rng.next() as u8;
                }
                d.truncate(1 + (rng.next() as usize) % (d.len() + 8));
                d
            };
            if let Ok(f) = Frame::parse(&data) {
                let n = f.packets().count();
                assert_eq!(n, f.len());
            }
        }
    }

    #[test]
    fn max_count_with_empty_packets_is_fine() {
        let mut data = vec![0xFF, 0xFF];
        data.extend(std::iter::repeat_n(0u8, 2 * 65_535));
        let f = Frame::parse(&data).unwrap();
        assert_eq!((f.declared(), f.len()), (65_535, 0));
        assert_eq!(f.packets().count(), 0);
    }
}
