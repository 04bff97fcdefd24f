// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {FirmwareIndex} from "../src/FirmwareIndex.sol";
import {Harness} from "./Harness.sol";

/// A stand-in for a multisig: forwards whatever it is told to the index.
contract Forwarder {
    function forward(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory out) = target.call(data);
        if (!ok) {
            assembly {
                revert(add(out, 32), mload(out))
            }
        }
        return out;
    }
}

/// Attacks on the governance rules as the holder of one stolen key (or a stolen quorum) would try them.
contract AttacksTest is Harness {
    function test_attack_one_key_at_threshold_two_cannot_revoke_releases() public {
        setThreshold(2);
        live(1);
        live(2);
        // Alice's key is stolen; the thief revokes every live release.
        vm.prank(ALICE);
        assertTrue(!index.revoke(SENSOR, 1, "stolen key"), "one approval is not a revocation");
        vm.prank(ALICE);
        index.revoke(SENSOR, 2, "stolen key");
        require(!index.isRevoked(SENSOR, 1) && !index.isRevoked(SENSOR, 2), "one key of two revoked a release");
        vm.prank(ALICE);
        vm.expectRevert(
            abi.encodeWithSelector(
                FirmwareIndex.DuplicateApproval.selector, ALICE, keccak256(abi.encode("revoke", SENSOR, uint64(1)))
            )
        );
        index.revoke(SENSOR, 1, "again");
        // A second, distinct publisher completes a real revocation.
        vm.prank(BOB);
        assertTrue(index.revoke(SENSOR, 1, "bricks rev B boards"), "two of two revoke");
        assertTrue(index.isRevoked(SENSOR, 1), "revoked");
    }

    function test_attack_revocation_approvals_of_a_removed_key_are_void() public {
        setThreshold(2);
        live(1);
        vm.prank(ALICE);
        index.revoke(SENSOR, 1, "stolen key");
        vm.prank(OWNER);
        index.addPublisher(address(0xD0), bytes32(0));
        vm.prank(OWNER);
        index.removePublisher(ALICE, bytes32(0));
        vm.prank(BOB);
        assertTrue(!index.revoke(SENSOR, 1, "x"), "the removed key's approval does not count");
        assertTrue(!index.isRevoked(SENSOR, 1), "not revoked");
    }

    function test_attack_threshold_above_distinct_publishers_reverts() public {
        // Carol registered for three products counts once: Alice, Bob, Carol are 3, a threshold of 4 is 4-of-3.
        vm.prank(OWNER);
        index.addPublisher(CAROL, GATEWAY);
        vm.prank(OWNER);
        index.addPublisher(CAROL, bytes32("acme-camera"));
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.InvalidThreshold.selector, 4, 3));
        index.setThreshold(4);
        setThreshold(3);
        assertEq(index.publisherCount(), 3, "distinct publishers");
    }

    function test_attack_removing_a_publisher_below_the_threshold_reverts() public {
        setThreshold(3);
        // With two publishers left at threshold 3 nothing could ever be published, resumed or revoked again.
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.InvalidThreshold.selector, 3, 2));
        index.removePublisher(BOB, bytes32(0));
        // Removing one of two registrations of the same address keeps it a publisher: allowed.
        vm.prank(OWNER);
        index.addPublisher(CAROL, GATEWAY);
        vm.prank(OWNER);
        index.removePublisher(CAROL, GATEWAY);
        assertEq(index.publisherCount(), 3, "Carol still counts");
    }

    function test_attack_one_key_at_threshold_two_cannot_resume() public {
        setThreshold(2);
        live(1);
        vm.prank(OWNER);
        index.addGuardian(GUARD, bytes32(0));
        vm.prank(GUARD);
        index.pause(SENSOR, 0);
        // The thief holding Alice's key tries to lift an honest pause.
        vm.prank(ALICE);
        assertTrue(!index.resume(SENSOR, 0), "one approval is not a resume");
        assertTrue(index.pausedUntil(SENSOR, 0) > block.timestamp, "still paused");
        // A guardian may pause but never resume.
        vm.prank(GUARD);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPublisher.selector, GUARD, SENSOR));
        index.resume(SENSOR, 0);
        vm.prank(BOB);
        assertTrue(index.resume(SENSOR, 0), "two of two resume");
        assertEq(index.pausedUntil(SENSOR, 0), block.timestamp, "resumed: the pause ends now");
    }

    function test_attack_an_old_resume_approval_does_not_lift_a_new_pause() public {
        setThreshold(2);
        live(1);
        vm.prank(ALICE);
        index.pause(SENSOR, 1);
        vm.prank(ALICE);
        index.resume(SENSOR, 1);
        vm.prank(BOB);
        index.resume(SENSOR, 1);
        // Paused again; Carol's key is now stolen. The approvals of the first resume must not count.
        vm.prank(BOB);
        index.pause(SENSOR, 1);
        vm.prank(CAROL);
        assertTrue(!index.resume(SENSOR, 1), "a fresh resume needs fresh approvals");
        assertTrue(index.pausedUntil(SENSOR, 1) > block.timestamp, "still paused");
    }

    function test_attack_a_stolen_key_pause_expires() public {
        live(1);
        vm.prank(ALICE);
        index.pause(SENSOR, 0);
        assertEq(index.pausedUntil(SENSOR, 0), block.timestamp + 3 days, "bounded by the default pause bound");
        vm.warp(block.timestamp + 3 days);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPaused.selector, SENSOR, uint64(0)));
        vm.prank(BOB);
        index.resume(SENSOR, 0);
        // Once removed, the key pauses no more.
        vm.prank(OWNER);
        index.removePublisher(ALICE, bytes32(0));
        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotGuardian.selector, ALICE, SENSOR));
        index.pause(SENSOR, 0);
    }

    function test_attack_a_stolen_quorum_release_is_cancelled_by_one_guardian() public {
        setThreshold(2);
        vm.prank(OWNER);
        index.setActivationDelay(SENSOR, 1 days);
        vm.prank(OWNER);
        index.addGuardian(GUARD, SENSOR);
        // Alice's and Bob's keys are both stolen: the thieves publish a backdoor.
        live(1);
        (, uint64 installableAt,,) = index.rolloutState(SENSOR, 1);
        assertEq(installableAt, block.timestamp + 1 days, "installable after the delay");
        vm.warp(block.timestamp + 1 days - 1);
        vm.prank(GUARD);
        index.cancel(SENSOR, 1, "not ours");
        (,,, bool isRevoked_) = index.rolloutState(SENSOR, 1);
        assertTrue(isRevoked_, "cancelled for good");
        // The stolen quorum cannot undo it: a revoked release stays revoked, and resume does not touch it.
        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.AlreadyRevoked.selector, SENSOR, uint64(1)));
        index.revoke(SENSOR, 1, "x");
    }

    function test_owner_can_be_a_contract() public {
        Forwarder multisig = new Forwarder();
        vm.prank(OWNER);
        index.transferOwnership(address(multisig));
        multisig.forward(address(index), abi.encodeCall(FirmwareIndex.acceptOwnership, ()));
        assertTrue(index.owner() == address(multisig), "the contract owns the index");
        multisig.forward(address(index), abi.encodeCall(FirmwareIndex.addGuardian, (GUARD, bytes32(0))));
        multisig.forward(address(index), abi.encodeCall(FirmwareIndex.setThreshold, (2)));
        multisig.forward(address(index), abi.encodeCall(FirmwareIndex.setActivationDelay, (SENSOR, 1 hours)));
        live(1);
        multisig.forward(address(index), abi.encodeCall(FirmwareIndex.revoke, (SENSOR, 1, "owner")));
        assertTrue(index.isRevoked(SENSOR, 1), "the owning contract revokes at once");
        assertTrue(index.threshold() == 2 && index.isGuardian(SENSOR, GUARD), "admin calls went through");
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, OWNER));
        index.setThreshold(1);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, address(this)));
        index.setPauseBound(1 hours);
    }
}
