//! The findings of the subtree, as a reader selects them.

use tallytree_aggregator::findings::{Filter, RULES_VERSION};
use tallytree_proto::pb;

use super::{Query, QueryError};

impl Query {
    /// The findings `filter` selects, taken now. Blocking (the first call
    /// loads every counted summary).
    pub fn findings(&self, filter: &Filter) -> Result<pb::FindingsResponse, QueryError> {
        if let Some(region) = filter.region
            && !region.is_within(self.ctx.identity.region)
        {
            return Err(QueryError::OutsideSubtree {
                region,
                node: self.ctx.identity.region,
            });
        }
        let as_of_ms = self.ctx.clock.now_ms();
        let findings = self.ctx.findings.select(&self.ctx, filter, as_of_ms)?;
        Ok(pb::FindingsResponse {
            findings,
            as_of_ms,
            rules_version: RULES_VERSION,
        })
    }
}
