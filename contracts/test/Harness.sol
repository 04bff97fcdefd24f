// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {FirmwareIndex} from "../src/FirmwareIndex.sol";

/// The few Foundry cheatcodes these tests use.
interface Vm {
    function prank(address who) external;
    function warp(uint256 timestamp) external;
    function expectRevert(bytes calldata revertData) external;
    function readFile(string calldata path) external view returns (string memory);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);
    function parseJsonBytes32Array(string calldata json, string calldata key)
        external
        pure
        returns (bytes32[] memory);
    function parseJsonBytes(string calldata json, string calldata key) external pure returns (bytes memory);
    function parseJsonUint(string calldata json, string calldata key) external pure returns (uint256);
    function toString(uint256 value) external pure returns (string memory);
}

/// A deployed index with two global publishers (Alice, Bob) and one for the sensor (Carol), and helpers.
contract Harness {
    Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    FirmwareIndex index;
    address constant OWNER = address(0x0A);
    address constant ALICE = address(0xA1);
    address constant BOB = address(0xB0);
    address constant CAROL = address(0xC0);
    address constant GUARD = address(0x6A);
    address constant MALLORY = address(0xBAD);
    bytes32 constant SENSOR = bytes32("acme-sensor");
    bytes32 constant GATEWAY = bytes32("acme-gateway");

    function setUp() public virtual {
        vm.warp(1_800_000_000);
        index = new FirmwareIndex(OWNER, 1);
        vm.prank(OWNER);
        index.addPublisher(ALICE, bytes32(0));
        vm.prank(OWNER);
        index.addPublisher(BOB, bytes32(0));
        vm.prank(OWNER);
        index.addPublisher(CAROL, SENSOR);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        require(a == b, string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertTrue(bool ok, string memory what) internal pure {
        require(ok, what);
    }

    /// Every device, never expiring, the whole fleet at once.
    function openTerms() internal pure returns (FirmwareIndex.Terms memory t) {
        t.rolloutStart = 10000;
    }

    function full(bytes32 product, uint64 seq, bytes32 target) internal pure returns (FirmwareIndex.Release memory) {
        return FirmwareIndex.Release({
            product: product,
            sequence: seq,
            baseHash: bytes32(0),
            targetHash: target,
            targetSize: 4096,
            patchCid: hex"01551220404657c5de6e0befe97c9208541bb7d70a2fd6152b4d468bf8866ad76e912022",
            patchHash: keccak256(abi.encode("payload", target)),
            patchSize: 2000,
            kind: FirmwareIndex.Kind.Full,
            minSequence: 0,
            terms: openTerms()
        });
    }

    function patch(bytes32 product, uint64 seq, bytes32 base, bytes32 target)
        internal
        pure
        returns (FirmwareIndex.Release memory r)
    {
        r = full(product, seq, target);
        r.kind = FirmwareIndex.Kind.Patch;
        r.baseHash = base;
        r.patchSize = 300;
    }

    function publishAs(address who, FirmwareIndex.Release memory r) internal returns (bool) {
        vm.prank(who);
        return index.publish(r);
    }

    function setThreshold(uint256 m) internal {
        vm.prank(OWNER);
        index.setThreshold(m);
    }

    /// Release `seq` of the sensor, live (approved by Alice and, at threshold 2, Bob).
    function live(uint64 seq) internal returns (FirmwareIndex.Release memory r) {
        r = full(SENSOR, seq, keccak256(abi.encode("image", seq)));
        if (!publishAs(ALICE, r)) assertTrue(publishAs(BOB, r), "live after Bob's approval");
    }
}
