//! The agent's Kubernetes layer, shared by its controllers: timed and leadership-guarded API
//! calls ([`call`], [`leadership`]), the watch caches of slim objects ([`caches`], [`slim`],
//! [`strip`]), the per-flow index the watches feed ([`index`]), the ownership rule ([`owner`])
//! and the Events the agent publishes ([`events`]). Nothing here knows how a flow is planned.

pub mod caches;
pub mod call;
pub mod events;
pub mod index;
pub mod leadership;
pub mod owner;
pub mod slim;
pub mod strip;
