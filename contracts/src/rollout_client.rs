//! Rollout control through [`IndexClient`]: guardians, pauses, resumes, cancels, activation delays, the pause
//! bound, and reads of a release's rollout state.

use std::fmt;

use alloy::primitives::{Address, B256, FixedBytes};
use firmchain_update::rollout::ReleaseGate;
use firmchain_update::{ProductId, Sequence};

use crate::FirmwareIndex::{self, FirmwareIndexErrors};
use crate::client::{ContractError, IndexClient, product, within};

/// The outcome of a call that may need the threshold (revoke, resume).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The transaction.
    pub tx: B256,
    /// Whether this call completed the act (false: an approval was recorded, more are needed).
    pub done: bool,
}

/// A release's rollout state as the contract reports it (not proven: see [`crate::proven_rollout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolloutState {
    /// Timing and pauses.
    pub gate: ReleaseGate,
    /// Revoked or cancelled.
    pub revoked: bool,
}

fn scope(p: &FixedBytes<32>) -> String {
    if p.0 == [0; 32] {
        "every product".into()
    } else {
        product(p).to_string()
    }
}

/// Human text for the rollout errors of the contract.
pub(crate) fn describe(e: &FirmwareIndexErrors, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use FirmwareIndexErrors as E;
    match e {
        E::NotGuardian(e) => write!(
            f,
            "{} is neither a guardian nor a publisher of {}",
            e.caller,
            product(&e.product)
        ),
        E::GuardianExists(e) => write!(f, "{} already guards {}", e.guardian, scope(&e.product)),
        E::GuardianMissing(e) => write!(f, "{} is not a guardian of {}", e.guardian, scope(&e.product)),
        E::TooManyHardwareClasses(e) => {
            write!(f, "{} hardware classes, the limit is 16", e.count)
        }
        E::HardwareClassesNotAscending(e) => write!(
            f,
            "hardware class {} is zero or not above the one before (list them strictly ascending)",
            e.index
        ),
        E::ExpiresTooSoon(e) => write!(
            f,
            "the release expires at {} but becomes installable only at {}",
            e.notAfter, e.installableAt
        ),
        E::InvalidRollout(e) => write!(
            f,
            "rollout start {} bps, step {} bps every {} s is not valid",
            e.start, e.step, e.interval
        ),
        E::NotPaused(e) => write!(
            f,
            "{} {} is not paused",
            product(&e.product),
            if e.sequence == 0 {
                "(the product)".to_owned()
            } else {
                format!("release {}", e.sequence)
            }
        ),
        E::WindowClosed(e) => write!(
            f,
            "release {} of {} left its activation delay at chain time {}: only revocation stops it now",
            e.sequence,
            product(&e.product),
            e.installableAt
        ),
        E::DelayTooLong(e) => write!(f, "a delay of {} s is above the limit of {} s", e.delay, e.limit),
        E::InvalidPauseBound(e) => {
            write!(
                f,
                "a pause bound of {} s is not within 1..={} s",
                e.bound, e.limit
            )
        }
        other => write!(f, "{other:?}"),
    }
}

fn product_word(p: Option<&ProductId>) -> FixedBytes<32> {
    FixedBytes(p.map_or([0; 32], |p| p.0))
}

impl IndexClient {
    /// Pause `product` (`Sequence(0)`) or one of its releases. A publisher's or guardian's pause lasts the
    /// pause bound; the owner's lasts until resumed. Returns the transaction and the pause's end.
    pub async fn pause(&self, product: &ProductId, sequence: Sequence) -> Result<(B256, u64), ContractError> {
        let call = self.contract.pause(FixedBytes(product.0), sequence.0);
        let receipt = self.send("pausing", async { call.send().await }).await?;
        let until = receipt
            .decoded_log::<FirmwareIndex::Paused>()
            .map_or(0, |l| l.data.until);
        Ok((receipt.transaction_hash, until))
    }

    /// Lift a pause: the owner at once, a publisher as one of the threshold's approvals.
    pub async fn resume(&self, product: &ProductId, sequence: Sequence) -> Result<Approval, ContractError> {
        let call = self.contract.resume(FixedBytes(product.0), sequence.0);
        let receipt = self.send("resuming", async { call.send().await }).await?;
        Ok(Approval {
            tx: receipt.transaction_hash,
            done: receipt.decoded_log::<FirmwareIndex::Resumed>().is_some(),
        })
    }

    /// Cancel a release for good inside its activation delay (a guardian or the owner).
    pub async fn cancel(
        &self,
        product: &ProductId,
        sequence: Sequence,
        reason: &str,
    ) -> Result<B256, ContractError> {
        let call = self
            .contract
            .cancel(FixedBytes(product.0), sequence.0, reason.to_owned());
        Ok(self
            .send("cancelling", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// Allow `guardian` to pause and cancel `product` (`None`: every product).
    pub async fn add_guardian(
        &self,
        guardian: Address,
        product: Option<&ProductId>,
    ) -> Result<B256, ContractError> {
        let call = self.contract.addGuardian(guardian, product_word(product));
        Ok(self
            .send("adding a guardian", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// Withdraw a guardian's right.
    pub async fn remove_guardian(
        &self,
        guardian: Address,
        product: Option<&ProductId>,
    ) -> Result<B256, ContractError> {
        let call = self.contract.removeGuardian(guardian, product_word(product));
        Ok(self
            .send("removing a guardian", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// Set `product`'s activation delay in seconds (for releases that go live after this).
    pub async fn set_activation_delay(
        &self,
        product: &ProductId,
        delay_secs: u64,
    ) -> Result<B256, ContractError> {
        let call = self
            .contract
            .setActivationDelay(FixedBytes(product.0), delay_secs);
        Ok(self
            .send("setting the activation delay", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// Set how long one publisher's or guardian's pause lasts, in seconds.
    pub async fn set_pause_bound(&self, bound_secs: u64) -> Result<B256, ContractError> {
        let call = self.contract.setPauseBound(bound_secs);
        Ok(self
            .send("setting the pause bound", async { call.send().await })
            .await?
            .transaction_hash)
    }

    /// `product`'s activation delay and the pause bound, in seconds.
    pub async fn delays(&self, product: &ProductId) -> Result<(u64, u64), ContractError> {
        let what = "reading delays";
        let delay = within(
            self.timeout,
            what,
            self.contract.activationDelay(FixedBytes(product.0)).call(),
        )
        .await?
        .map_err(|e| ContractError::from_call(what, e))?;
        let bound = within(self.timeout, what, self.contract.pauseBound().call())
            .await?
            .map_err(|e| ContractError::from_call(what, e))?;
        Ok((delay, bound))
    }

    /// A release's timing, pauses and revocation, as the contract reports them.
    pub async fn rollout_state(
        &self,
        product: &ProductId,
        sequence: Sequence,
    ) -> Result<RolloutState, ContractError> {
        let what = "reading the rollout state";
        let p = FixedBytes(product.0);
        let r = within(
            self.timeout,
            what,
            self.contract.rolloutState(p, sequence.0).call(),
        )
        .await?
        .map_err(|e| ContractError::from_call(what, e))?;
        let release_paused_until = within(
            self.timeout,
            what,
            self.contract.pausedUntil(p, sequence.0).call(),
        )
        .await?
        .map_err(|e| ContractError::from_call(what, e))?;
        let product_paused_until = within(self.timeout, what, self.contract.pausedUntil(p, 0).call())
            .await?
            .map_err(|e| ContractError::from_call(what, e))?;
        Ok(RolloutState {
            gate: ReleaseGate {
                live_at: r.liveAt,
                installable_at: r.installableAt,
                product_paused_until,
                release_paused_until,
            },
            revoked: r.isRevoked_,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Revert;

    #[test]
    fn rollout_reverts_read_as_sentences() {
        let e = Revert(FirmwareIndexErrors::WindowClosed(FirmwareIndex::WindowClosed {
            product: FixedBytes(*b"acme-sensor\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"),
            sequence: 3,
            installableAt: 1_800_000_000,
        }));
        assert_eq!(
            e.to_string(),
            "release 3 of acme-sensor left its activation delay at chain time 1800000000: only revocation stops it now"
        );
    }
}
