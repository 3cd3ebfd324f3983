//! The named scenarios of `jobflow-load --scenario` (the seed's table and the issue's
//! additions): how many flows, how many steps each, and how they arrive.

use std::time::Duration;

use clap::ValueEnum;
use serde::Serialize;

/// A named load scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Scenario {
    /// 10 flows x 5 steps, created 8 at a time.
    #[value(name = "10x5")]
    #[serde(rename = "10x5")]
    Small,
    /// 100 flows x 10 steps, created 8 at a time.
    #[value(name = "100x10")]
    #[serde(rename = "100x10")]
    Medium,
    /// 1000 flows x 20 steps, created 8 at a time.
    #[value(name = "1000x20")]
    #[serde(rename = "1000x20")]
    Large,
    /// One flow of 50 steps.
    #[value(name = "dag50")]
    #[serde(rename = "dag50")]
    Dag50,
    /// 100 flows x 5 steps, all 100 creates in flight at once.
    #[value(name = "burst100")]
    #[serde(rename = "burst100")]
    Burst100,
    /// `--rate` flows per minute (5 steps each) for `--minutes` minutes, evenly spaced.
    #[value(name = "sustained")]
    #[serde(rename = "sustained")]
    Sustained,
}

/// How the flows of a run are created.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Arrival {
    /// All of them as fast as possible, this many create requests in flight.
    Burst {
        /// Create requests in flight.
        in_flight: usize,
    },
    /// One every `every`, starting at once.
    Paced {
        /// The gap between two creates.
        #[serde(serialize_with = "millis")]
        every: Duration,
    },
}

/// What a run does: flows, steps per flow and arrival.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Flows created.
    pub flows: usize,
    /// Steps per flow.
    pub steps: usize,
    /// How they are created.
    pub arrival: Arrival,
}

impl Scenario {
    /// The plan of this scenario; `rate_per_minute` and `minutes` only matter for
    /// [`Scenario::Sustained`].
    pub fn plan(self, rate_per_minute: u32, minutes: u32) -> Plan {
        let burst = |flows, steps| Plan {
            flows,
            steps,
            arrival: Arrival::Burst { in_flight: 8 },
        };
        match self {
            Self::Small => burst(10, 5),
            Self::Medium => burst(100, 10),
            Self::Large => burst(1000, 20),
            Self::Dag50 => burst(1, 50),
            Self::Burst100 => Plan {
                flows: 100,
                steps: 5,
                arrival: Arrival::Burst { in_flight: 100 },
            },
            Self::Sustained => {
                let rate = rate_per_minute.max(1);
                Plan {
                    flows: usize::try_from(rate.saturating_mul(minutes.max(1)))
                        .unwrap_or(usize::MAX),
                    steps: 5,
                    arrival: Arrival::Paced {
                        every: Duration::from_secs(60) / rate,
                    },
                }
            }
        }
    }
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's serialize_with passes a reference"
)]
fn millis<S: serde::Serializer>(every: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(every.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_have_the_seeds_shapes() {
        assert_eq!(Scenario::Large.plan(0, 0).flows, 1000);
        assert_eq!(Scenario::Large.plan(0, 0).steps, 20);
        assert_eq!(Scenario::Dag50.plan(0, 0).steps, 50);
        assert_eq!(
            Scenario::Burst100.plan(0, 0).arrival,
            Arrival::Burst { in_flight: 100 }
        );
        let sustained = Scenario::Sustained.plan(30, 2);
        assert_eq!(sustained.flows, 60);
        assert_eq!(
            sustained.arrival,
            Arrival::Paced {
                every: Duration::from_secs(2)
            }
        );
    }
}
