//! Reads through SPI that never assign a transaction id. pgrx's `Spi::get_one*` and `Spi::run*`
//! mark the transaction as writing (they assign an XID), which a hot standby refuses and which
//! burns an XID per call on a primary; a SELECT through `SpiClient::select` runs read-only.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;

/// The first column of the first row `query` returns, or None when it returns no row or NULL.
pub fn select_one<'mcx, A: FromDatum + IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'mcx>],
) -> SpiResult<Option<A>> {
    Spi::connect(|client| {
        let table = client.select(query, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get_one::<A>()
    })
}
