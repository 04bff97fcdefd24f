// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {FirmwareIndex} from "../src/FirmwareIndex.sol";
import {Harness} from "./Harness.sol";

/// Go-live times, pauses, guardians, activation delays and the rules of release terms.
contract RolloutTest is Harness {
    function setUp() public override {
        super.setUp();
        vm.prank(OWNER);
        index.addGuardian(GUARD, bytes32(0));
    }

    function expectRevertAs(address who, bytes memory err) internal {
        vm.prank(who);
        vm.expectRevert(err);
    }

    // ----- timing ----------------------------------------------------------------------------------------

    function test_go_live_time_and_delay_are_stored_per_release() public {
        live(1);
        (uint64 liveAt, uint64 installableAt, uint64 held, bool rev) = index.rolloutState(SENSOR, 1);
        assertEq(liveAt, block.timestamp, "live now");
        assertEq(installableAt, block.timestamp, "no delay: installable now");
        assertTrue(held == 0 && !rev, "not held, not revoked");
        vm.prank(OWNER);
        index.setActivationDelay(SENSOR, 2 hours);
        assertEq(index.activationDelay(SENSOR), 2 hours, "delay");
        vm.warp(block.timestamp + 100);
        live(2);
        (liveAt, installableAt,,) = index.rolloutState(SENSOR, 2);
        assertEq(installableAt - liveAt, 2 hours, "the delay in force when it went live");
        (, installableAt,,) = index.rolloutState(SENSOR, 1);
        assertEq(installableAt, block.timestamp - 100, "a later delay does not move earlier releases");
        (liveAt,) = index.timing(SENSOR, 2);
        assertEq(liveAt, block.timestamp, "timing() reads the same slot");
    }

    function test_delay_rules() public {
        expectRevertAs(MALLORY, abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, MALLORY));
        index.setActivationDelay(SENSOR, 1);
        expectRevertAs(OWNER, abi.encodeWithSelector(FirmwareIndex.DelayTooLong.selector, 30 days + 1, 30 days));
        index.setActivationDelay(SENSOR, 30 days + 1);
    }

    // ----- cancel ----------------------------------------------------------------------------------------

    function test_cancel_rules() public {
        vm.prank(OWNER);
        index.setActivationDelay(SENSOR, 1 hours);
        live(1);
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.NotGuardian.selector, ALICE, SENSOR));
        index.cancel(SENSOR, 1, "a publisher is not a guardian");
        expectRevertAs(GUARD, abi.encodeWithSelector(FirmwareIndex.UnknownRelease.selector, SENSOR, uint64(2)));
        index.cancel(SENSOR, 2, "future");
        vm.warp(block.timestamp + 1 hours);
        expectRevertAs(
            GUARD, abi.encodeWithSelector(FirmwareIndex.WindowClosed.selector, SENSOR, uint64(1), uint64(block.timestamp))
        );
        index.cancel(SENSOR, 1, "too late");
        live(2);
        vm.prank(OWNER);
        index.cancel(SENSOR, 2, "the owner may cancel too");
        assertTrue(index.isRevoked(SENSOR, 2), "cancelled");
        expectRevertAs(GUARD, abi.encodeWithSelector(FirmwareIndex.AlreadyRevoked.selector, SENSOR, uint64(2)));
        index.cancel(SENSOR, 2, "again");
    }

    function test_without_a_delay_there_is_no_window() public {
        live(1);
        expectRevertAs(
            GUARD, abi.encodeWithSelector(FirmwareIndex.WindowClosed.selector, SENSOR, uint64(1), uint64(block.timestamp))
        );
        index.cancel(SENSOR, 1, "no window");
    }

    function test_product_guardian_is_limited_to_its_product() public {
        address g = address(0x6B);
        vm.prank(OWNER);
        index.addGuardian(g, GATEWAY);
        assertTrue(index.isGuardian(GATEWAY, g) && !index.isGuardian(SENSOR, g), "scope");
        expectRevertAs(g, abi.encodeWithSelector(FirmwareIndex.NotGuardian.selector, g, SENSOR));
        index.pause(SENSOR, 0);
        vm.prank(g);
        index.pause(GATEWAY, 0);
    }

    function test_guardian_administration() public {
        expectRevertAs(MALLORY, abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, MALLORY));
        index.addGuardian(MALLORY, bytes32(0));
        expectRevertAs(OWNER, abi.encodeWithSelector(FirmwareIndex.GuardianExists.selector, GUARD, bytes32(0)));
        index.addGuardian(GUARD, bytes32(0));
        expectRevertAs(OWNER, abi.encodeWithSelector(FirmwareIndex.ZeroAddress.selector));
        index.addGuardian(address(0), bytes32(0));
        expectRevertAs(OWNER, abi.encodeWithSelector(FirmwareIndex.GuardianMissing.selector, GUARD, SENSOR));
        index.removeGuardian(GUARD, SENSOR);
        expectRevertAs(MALLORY, abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, MALLORY));
        index.removeGuardian(GUARD, bytes32(0));
        vm.prank(OWNER);
        index.removeGuardian(GUARD, bytes32(0));
        expectRevertAs(GUARD, abi.encodeWithSelector(FirmwareIndex.NotGuardian.selector, GUARD, SENSOR));
        index.pause(SENSOR, 0);
    }

    // ----- pause and resume ------------------------------------------------------------------------------

    function test_pause_rules() public {
        live(1);
        expectRevertAs(MALLORY, abi.encodeWithSelector(FirmwareIndex.NotGuardian.selector, MALLORY, SENSOR));
        index.pause(SENSOR, 0);
        expectRevertAs(GUARD, abi.encodeWithSelector(FirmwareIndex.UnknownRelease.selector, SENSOR, uint64(2)));
        index.pause(SENSOR, 2);
        vm.prank(GUARD);
        index.pause(SENSOR, 1);
        assertEq(index.pausedUntil(SENSOR, 1), block.timestamp + 3 days, "a guardian's pause is bounded");
        (,, uint64 held,) = index.rolloutState(SENSOR, 1);
        assertEq(held, block.timestamp + 3 days, "rolloutState reports the release's pause");
        vm.prank(OWNER);
        index.pause(SENSOR, 0);
        (,, held,) = index.rolloutState(SENSOR, 1);
        assertEq(held, type(uint64).max, "the owner's product pause lasts until resumed");
        vm.prank(OWNER);
        index.setPauseBound(1 hours);
        vm.prank(CAROL);
        index.pause(SENSOR, 0);
        assertEq(index.pausedUntil(SENSOR, 0), type(uint64).max, "a pause never shortens one in force");
        vm.warp(block.timestamp + 30 days);
        (,, held,) = index.rolloutState(SENSOR, 1);
        assertEq(held, type(uint64).max, "still held by the owner");
    }

    function test_pause_bound_rules() public {
        expectRevertAs(MALLORY, abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, MALLORY));
        index.setPauseBound(1 hours);
        expectRevertAs(OWNER, abi.encodeWithSelector(FirmwareIndex.InvalidPauseBound.selector, 0, 30 days));
        index.setPauseBound(0);
        expectRevertAs(OWNER, abi.encodeWithSelector(FirmwareIndex.InvalidPauseBound.selector, 30 days + 1, 30 days));
        index.setPauseBound(30 days + 1);
        vm.prank(OWNER);
        index.setPauseBound(1 hours);
        vm.prank(GUARD);
        index.pause(GATEWAY, 0);
        assertEq(index.pausedUntil(GATEWAY, 0), block.timestamp + 1 hours, "the new bound");
    }

    function test_resume_rules() public {
        live(1);
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.NotPaused.selector, SENSOR, uint64(0)));
        index.resume(SENSOR, 0);
        vm.prank(OWNER);
        index.pause(SENSOR, 0);
        expectRevertAs(MALLORY, abi.encodeWithSelector(FirmwareIndex.NotPublisher.selector, MALLORY, SENSOR));
        index.resume(SENSOR, 0);
        vm.prank(ALICE);
        assertTrue(index.resume(SENSOR, 0), "at threshold 1 one publisher resumes, even the owner's pause");
        setThreshold(3);
        vm.prank(GUARD);
        index.pause(SENSOR, 0);
        vm.prank(ALICE);
        assertTrue(!index.resume(SENSOR, 0), "one of three");
        bytes32 action = keccak256(abi.encode("resume", SENSOR, uint64(0), uint256(1)));
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.DuplicateApproval.selector, ALICE, action));
        index.resume(SENSOR, 0);
        vm.prank(OWNER);
        assertTrue(index.resume(SENSOR, 0), "the owner resumes at once");
        assertEq(index.resumeNonce(SENSOR, 0), 2, "one nonce per resume");
    }

    // ----- terms -----------------------------------------------------------------------------------------

    function test_terms_rules() public {
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("x"));
        r.terms.hardware = new bytes32[](17);
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.TooManyHardwareClasses.selector, 17));
        index.publish(r);
        r.terms.hardware = new bytes32[](2);
        r.terms.hardware[0] = bytes32("rev-b");
        r.terms.hardware[1] = bytes32("rev-a");
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.HardwareClassesNotAscending.selector, 1));
        index.publish(r);
        r.terms.hardware[1] = bytes32("rev-b");
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.HardwareClassesNotAscending.selector, 1));
        index.publish(r);
        r.terms.hardware[0] = bytes32(0);
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.HardwareClassesNotAscending.selector, 0));
        index.publish(r);
        r.terms.hardware[0] = bytes32("rev-a");

        r.terms.notAfter = uint64(block.timestamp);
        expectRevertAs(
            ALICE,
            abi.encodeWithSelector(FirmwareIndex.ExpiresTooSoon.selector, uint64(block.timestamp), uint64(block.timestamp))
        );
        index.publish(r);
        vm.prank(OWNER);
        index.setActivationDelay(SENSOR, 1 hours);
        r.terms.notAfter = uint64(block.timestamp + 1 hours);
        expectRevertAs(
            ALICE,
            abi.encodeWithSelector(
                FirmwareIndex.ExpiresTooSoon.selector, r.terms.notAfter, uint64(block.timestamp + 1 hours)
            )
        );
        index.publish(r);
        r.terms.notAfter = uint64(block.timestamp + 1 hours + 1);

        uint16[3][5] memory bad = [
            [uint16(10001), 0, 0], [uint16(100), 10001, 1], [uint16(100), 100, 0], [uint16(100), 0, 60], [uint16(0), 0, 0]
        ];
        for (uint256 i = 0; i < bad.length; i++) {
            r.terms.rolloutStart = bad[i][0];
            r.terms.rolloutStep = bad[i][1];
            r.terms.rolloutInterval = bad[i][2];
            expectRevertAs(
                ALICE,
                abi.encodeWithSelector(
                    FirmwareIndex.InvalidRollout.selector, bad[i][0], bad[i][1], uint64(bad[i][2])
                )
            );
            index.publish(r);
        }
        r.terms.rolloutStart = 1000;
        r.terms.rolloutStep = 2000;
        r.terms.rolloutInterval = 1 hours;
        r.terms.notesCid = new bytes(129);
        expectRevertAs(ALICE, abi.encodeWithSelector(FirmwareIndex.CidTooLong.selector, 129));
        index.publish(r);
        r.terms.notesCid = r.patchCid;
        assertTrue(publishAs(ALICE, r), "a staged release for two hardware classes goes live");
        assertTrue(index.digest(SENSOR, 1) == keccak256(abi.encode(r)), "the terms are part of the digest");
    }

    function test_a_canary_only_and_a_zero_start_release_are_valid() public {
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("x"));
        r.terms.rolloutStart = 500;
        assertTrue(publishAs(ALICE, r), "5% and no step: a canary that stays");
        r = full(SENSOR, 2, keccak256("y"));
        r.terms.rolloutStart = 0;
        r.terms.rolloutStep = 10000;
        r.terms.rolloutInterval = 1 days;
        assertTrue(publishAs(ALICE, r), "nobody for a day, then everybody");
    }
}
