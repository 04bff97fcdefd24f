// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {FirmwareIndex} from "../src/FirmwareIndex.sol";

interface VmA {
    function prank(address who) external;
    function expectRevert(bytes calldata revertData) external;
}

/// Attacks on the governance rules as a holder of one stolen key would try them.
contract AttacksTest {
    VmA constant vm = VmA(address(uint160(uint256(keccak256("hevm cheat code")))));
    address constant OWNER = address(0x0A);
    address constant ALICE = address(0xA1);
    address constant BOB = address(0xB0);
    address constant CAROL = address(0xC0);
    bytes32 constant SENSOR = bytes32("acme-sensor");
    bytes32 constant GATEWAY = bytes32("acme-gateway");
    FirmwareIndex index;

    function setUp() public {
        index = new FirmwareIndex(OWNER, 1);
        vm.prank(OWNER);
        index.addPublisher(ALICE, bytes32(0));
        vm.prank(OWNER);
        index.addPublisher(BOB, bytes32(0));
    }

    function full(uint64 seq, bytes32 target) internal pure returns (FirmwareIndex.Release memory r) {
        r.product = SENSOR;
        r.sequence = seq;
        r.targetHash = target;
        r.targetSize = 4096;
        r.patchCid = hex"01551220404657c5de6e0befe97c9208541bb7d70a2fd6152b4d468bf8866ad76e912022";
        r.patchHash = keccak256(abi.encode("payload", target));
        r.patchSize = 2000;
        r.kind = FirmwareIndex.Kind.Full;
    }

    function publishBoth(uint64 seq) internal {
        FirmwareIndex.Release memory r = full(seq, keccak256(abi.encode(seq)));
        vm.prank(ALICE);
        index.publish(r);
        vm.prank(BOB);
        index.approve(r);
    }

    function test_attack_one_key_at_threshold_two_cannot_revoke_releases() public {
        vm.prank(OWNER);
        index.setThreshold(2);
        publishBoth(1);
        publishBoth(2);
        // Alice's key is stolen; the thief revokes every live release.
        vm.prank(ALICE);
        index.revoke(SENSOR, 1, "stolen key");
        vm.prank(ALICE);
        index.revoke(SENSOR, 2, "stolen key");
        require(!index.isRevoked(SENSOR, 1) && !index.isRevoked(SENSOR, 2), "one key of two revoked a release");
    }

    function test_attack_threshold_above_distinct_publishers_reverts() public {
        // One address registered for three products counts once: a threshold of 3 would be 3-of-2.
        vm.prank(OWNER);
        index.addPublisher(ALICE, SENSOR);
        vm.prank(OWNER);
        index.addPublisher(ALICE, GATEWAY);
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.InvalidThreshold.selector, 3, 2));
        index.setThreshold(3);
    }

    function test_attack_removing_a_publisher_below_the_threshold_reverts() public {
        vm.prank(OWNER);
        index.setThreshold(2);
        // With one publisher left at threshold 2 nothing could ever be published, resumed or revoked again.
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.InvalidThreshold.selector, 2, 1));
        index.removePublisher(BOB, bytes32(0));
    }
}
