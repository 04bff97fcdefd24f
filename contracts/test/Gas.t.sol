// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {FirmwareIndex} from "../src/FirmwareIndex.sol";
import {Harness} from "./Harness.sol";

/// Each call once, as operators make it, for `forge test --match-contract Gas --gas-report` (no reverts).
contract GasTest is Harness {
    function test_gas_of_each_rollout_call() public {
        vm.prank(OWNER);
        index.addGuardian(GUARD, bytes32(0));
        vm.prank(OWNER);
        index.setActivationDelay(SENSOR, 1 hours);
        vm.prank(OWNER);
        index.setPauseBound(1 days);
        setThreshold(2);
        // A staged release for two hardware classes with notes, approved by two publishers.
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("one"));
        r.terms.hardware = new bytes32[](2);
        r.terms.hardware[0] = bytes32("rev-a");
        r.terms.hardware[1] = bytes32("rev-b");
        r.terms.notAfter = uint64(block.timestamp + 90 days);
        r.terms.rolloutStart = 1000;
        r.terms.rolloutStep = 2000;
        r.terms.rolloutInterval = 1 hours;
        r.terms.notesCid = r.patchCid;
        publishAs(ALICE, r);
        vm.prank(BOB);
        index.approve(r);
        vm.prank(GUARD);
        index.pause(SENSOR, 0);
        vm.prank(ALICE);
        index.resume(SENSOR, 0);
        vm.prank(BOB);
        index.resume(SENSOR, 0);
        vm.prank(GUARD);
        index.cancel(SENSOR, 1, "veto");
        FirmwareIndex.Release memory r2 = full(SENSOR, 2, keccak256("two"));
        publishAs(ALICE, r2);
        vm.prank(BOB);
        index.approve(r2);
        vm.warp(block.timestamp + 2 hours);
        vm.prank(ALICE);
        index.revoke(SENSOR, 2, "bad");
        vm.prank(BOB);
        index.revoke(SENSOR, 2, "bad");
        index.rolloutState(SENSOR, 2);
        vm.prank(OWNER);
        index.removeGuardian(GUARD, bytes32(0));
    }

    function test_gas_at_threshold_one() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("one")));
        publishAs(ALICE, patch(SENSOR, 2, keccak256("one"), keccak256("two")));
        vm.prank(ALICE);
        index.pause(SENSOR, 2);
        vm.prank(ALICE);
        index.resume(SENSOR, 2);
        vm.prank(ALICE);
        index.revoke(SENSOR, 2, "bad");
    }
}
