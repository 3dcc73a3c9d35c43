//! Typed statistics: each component declares its stats once, as a struct
//! whose every field carries a description, with [`stats!`](crate::stats).
//!
//! From that one declaration come the values in `nodus status` and in
//! telemetry (their names are the schema), `nodus status --describe`, and
//! the tables in `docs/stats.md` (a test fails when the file and the code
//! disagree). A stat that exists only sometimes (a latency before the first
//! sample, counters of an optional eBPF program) is declared [`Maybe`] and
//! left out while it has no value, as it always was.

use std::marker::PhantomData;

use super::{Stat, Stats};

/// What kind of value a stat is, by name, for descriptions.
pub trait StatKind {
    /// The Rust type a component fills in.
    type Value: Clone + Default + std::fmt::Debug + PartialEq;
    /// `counter`, `gauge`, `float` or `text`.
    const KIND: &'static str;
    /// Whether the stat may be absent.
    const OPTIONAL: bool = false;
    /// The value as a [`Stat`], or `None` to leave it out.
    fn stat(v: &Self::Value) -> Option<Stat>;
}

/// A count that only grows.
pub struct Counter;
/// A current level.
pub struct Gauge;
/// A measured quantity that is not whole (rates, latencies).
pub struct Float;
/// A short label.
pub struct Text;
/// A stat of kind `K` that is left out while it has no value.
pub struct Maybe<K>(PhantomData<K>);

impl StatKind for Counter {
    type Value = u64;
    const KIND: &'static str = "counter";
    fn stat(v: &u64) -> Option<Stat> {
        Some(Stat::Counter(*v))
    }
}

impl StatKind for Gauge {
    type Value = i64;
    const KIND: &'static str = "gauge";
    fn stat(v: &i64) -> Option<Stat> {
        Some(Stat::Gauge(*v))
    }
}

impl StatKind for Float {
    type Value = f64;
    const KIND: &'static str = "float";
    fn stat(v: &f64) -> Option<Stat> {
        Some(Stat::Float(*v))
    }
}

impl StatKind for Text {
    type Value = String;
    const KIND: &'static str = "text";
    fn stat(v: &String) -> Option<Stat> {
        Some(Stat::Text(v.clone()))
    }
}

impl<K: StatKind> StatKind for Maybe<K> {
    type Value = Option<K::Value>;
    const KIND: &'static str = K::KIND;
    const OPTIONAL: bool = true;
    fn stat(v: &Option<K::Value>) -> Option<Stat> {
        v.as_ref().and_then(K::stat)
    }
}

/// One declared stat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatField {
    /// Its name in status and telemetry.
    pub name: &'static str,
    /// `counter`, `gauge`, `float` or `text`.
    pub kind: &'static str,
    /// Whether it is left out while it has no value.
    pub optional: bool,
    /// The doc comment it was declared with.
    pub doc: &'static str,
}

impl StatField {
    /// The doc comment on one line.
    pub fn description(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A component's declared stats.
pub trait StatSet {
    /// Every stat, in declaration order.
    const FIELDS: &'static [StatField];
    /// The values, by name, for status and telemetry.
    fn to_stats(&self) -> Stats;
}

/// Declares a component's stats: a struct with one documented field per
/// stat, typed by its kind ([`Counter`], [`Gauge`], [`Float`], [`Text`], or
/// [`Maybe`] of one), and its [`StatSet`] implementation. A stat whose name
/// is not an identifier is declared `field as "its.name": Kind`.
///
/// ```ignore
/// stats! {
///     /// What the widget reports.
///     pub struct WidgetStats {
///         /// Widgets made since start.
///         made: Counter,
///         /// Median time to make one, µs; absent before the first.
///         latency_p50_us: Maybe<Float>,
///     }
/// }
/// ```
#[macro_export]
macro_rules! stats {
    (
        $(#[doc = $sdoc:literal])*
        $vis:vis struct $name:ident {
            $( $(#[doc = $doc:literal])+ $field:ident $(as $sname:literal)? : $kind:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, Default, PartialEq)]
        $vis struct $name {
            $( $(#[doc = $doc])+ pub $field: <$kind as $crate::supervisor::StatKind>::Value, )*
        }

        impl $crate::supervisor::StatSet for $name {
            const FIELDS: &'static [$crate::supervisor::StatField] = &[
                $( $crate::supervisor::StatField {
                    name: $crate::stat_name!($field $($sname)?),
                    kind: <$kind as $crate::supervisor::StatKind>::KIND,
                    optional: <$kind as $crate::supervisor::StatKind>::OPTIONAL,
                    doc: concat!($($doc, "\n"),+),
                }, )*
            ];

            fn to_stats(&self) -> $crate::supervisor::Stats {
                let mut s = $crate::supervisor::Stats::new();
                $(
                    if let Some(v) = <$kind as $crate::supervisor::StatKind>::stat(&self.$field) {
                        s.insert($crate::stat_name!($field $($sname)?).to_owned(), v);
                    }
                )*
                s
            }
        }
    };
}

/// A stat's name: its field's, unless declared `field as "other.name"`
/// (for names that are not identifiers).
#[doc(hidden)]
#[macro_export]
macro_rules! stat_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $name:literal) => {
        $name
    };
}

/// The stats tables of `docs/stats.md`: one section per component.
pub fn markdown(tables: &[(&str, &[StatField])]) -> String {
    let mut out = String::from(
        "# Stats\n\n\
         Every stat `nodus status` shows and telemetry carries, per component.\n\
         Generated from the code by `nodus status --describe --markdown`; a test\n\
         fails when this file and the code disagree.\n\n\
         Kinds: a *counter* only grows (since the component started); a *gauge*\n\
         is a current level; a *float* is a rate or a latency; *text* is a label.\n\
         Stats marked *optional* are left out while they have no value.\n",
    );
    for (component, fields) in tables {
        out.push_str(&format!(
            "\n## {component}\n\n| stat | kind | description |\n|---|---|---|\n"
        ));
        for f in *fields {
            let kind = if f.optional {
                format!("{}, optional", f.kind)
            } else {
                f.kind.to_owned()
            };
            out.push_str(&format!(
                "| `{}` | {kind} | {} |\n",
                f.name,
                f.description().replace('|', "\\|")
            ));
        }
    }
    out
}
