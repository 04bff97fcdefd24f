// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

import {FirmwareIndex} from "../src/FirmwareIndex.sol";

import {Harness} from "./Harness.sol";

contract FirmwareIndexTest is Harness {
    // ----- publishing ------------------------------------------------------------------------------------

    function test_publish_with_threshold_one_is_live_at_once() public {
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("image-1"));
        assertTrue(publishAs(ALICE, r), "live");
        (uint64 seq, bytes32 d) = index.latest(SENSOR);
        assertEq(seq, 1, "head");
        assertTrue(d == keccak256(abi.encode(r)), "digest is keccak256(abi.encode(record))");
        assertTrue(index.digest(SENSOR, 1) == d, "digest mapping");
        assertTrue(index.knownTarget(SENSOR, r.targetHash), "target becomes a valid base");
    }

    function test_patch_on_a_known_base_then_chain() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("image-1")));
        publishAs(BOB, patch(SENSOR, 2, keccak256("image-1"), keccak256("image-2")));
        publishAs(CAROL, patch(SENSOR, 3, keccak256("image-2"), keccak256("image-3")));
        (uint64 seq,) = index.latest(SENSOR);
        assertEq(seq, 3, "head");
    }

    function test_non_publisher_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPublisher.selector, MALLORY, SENSOR));
        publishAs(MALLORY, full(SENSOR, 1, keccak256("x")));
    }

    function test_product_publisher_is_limited_to_its_product() public {
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPublisher.selector, CAROL, GATEWAY));
        publishAs(CAROL, full(GATEWAY, 1, keccak256("x")));
    }

    function test_sequence_gap_reverts() public {
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.SequenceNotNext.selector, SENSOR, uint64(1), uint64(2)));
        publishAs(ALICE, full(SENSOR, 2, keccak256("x")));
    }

    function test_republishing_a_sequence_reverts() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("a")));
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.SequenceNotNext.selector, SENSOR, uint64(2), uint64(1)));
        publishAs(ALICE, full(SENSOR, 1, keccak256("b")));
    }

    function test_patch_from_an_unknown_base_reverts() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("image-1")));
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.UnknownBase.selector, SENSOR, keccak256("other")));
        publishAs(ALICE, patch(SENSOR, 2, keccak256("other"), keccak256("image-2")));
    }

    function test_base_of_another_product_is_unknown() public {
        publishAs(ALICE, full(GATEWAY, 1, keccak256("gw-1")));
        publishAs(ALICE, full(SENSOR, 1, keccak256("s-1")));
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.UnknownBase.selector, SENSOR, keccak256("gw-1")));
        publishAs(ALICE, patch(SENSOR, 2, keccak256("gw-1"), keccak256("s-2")));
    }

    function test_malformed_records_revert_with_the_rule() public {
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("x"));
        r.baseHash = keccak256("base");
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.FullImageWithBase.selector, keccak256("base")));
        publishAs(ALICE, r);

        r = patch(SENSOR, 1, bytes32(0), keccak256("x"));
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.PatchWithoutBase.selector));
        publishAs(ALICE, r);

        r = full(SENSOR, 1, bytes32(0));
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.EmptyField.selector, "targetHash"));
        publishAs(ALICE, r);

        r = full(SENSOR, 1, keccak256("x"));
        r.patchCid = "";
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.EmptyField.selector, "patchCid"));
        publishAs(ALICE, r);

        r.patchCid = new bytes(129);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.CidTooLong.selector, 129));
        publishAs(ALICE, r);

        r = full(SENSOR, 1, keccak256("x"));
        r.targetSize = 0;
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.EmptyField.selector, "targetSize"));
        publishAs(ALICE, r);

        r = full(SENSOR, 1, keccak256("x"));
        r.minSequence = 2;
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.MinSequenceAboveSequence.selector, uint64(2), uint64(1)));
        publishAs(ALICE, r);
    }

    // ----- m of n ----------------------------------------------------------------------------------------

    function test_single_compromised_publisher_cannot_move_head_with_threshold_two() public {
        setThreshold(2);
        FirmwareIndex.Release memory evil = full(SENSOR, 1, keccak256("backdoor"));
        // Alice's key is stolen: the attacker can approve once, as Alice.
        assertTrue(!publishAs(ALICE, evil), "one approval is not enough");
        (uint64 seq,) = index.latest(SENSOR);
        assertEq(seq, 0, "head did not move");
        vm.expectRevert(
            abi.encodeWithSelector(FirmwareIndex.DuplicateApproval.selector, ALICE, keccak256(abi.encode(evil)))
        );
        publishAs(ALICE, evil);
        (seq,) = index.latest(SENSOR);
        assertEq(seq, 0, "head still did not move");
    }

    function test_two_distinct_approvals_make_it_live() public {
        setThreshold(2);
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("good"));
        assertTrue(!publishAs(ALICE, r), "pending");
        vm.prank(BOB);
        assertTrue(index.approve(r), "live after the second approval");
        (uint64 seq, bytes32 d) = index.latest(SENSOR);
        assertEq(seq, 1, "head");
        assertTrue(d == keccak256(abi.encode(r)), "digest");
    }

    function test_approval_of_a_different_digest_does_not_count() public {
        setThreshold(2);
        publishAs(ALICE, full(SENSOR, 1, keccak256("good")));
        assertTrue(!publishAs(BOB, full(SENSOR, 1, keccak256("tampered"))), "a different record is its own proposal");
        (uint64 seq,) = index.latest(SENSOR);
        assertEq(seq, 0, "head");
    }

    function test_threshold_change_voids_pending_approvals() public {
        setThreshold(2);
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("good"));
        publishAs(ALICE, r);
        setThreshold(3);
        assertTrue(!publishAs(BOB, r), "Alice's old approval no longer counts");
        assertTrue(!publishAs(CAROL, r), "two of three");
        assertTrue(publishAs(ALICE, r), "Alice approves again: three of three");
    }

    function test_lowering_threshold_mid_approval_needs_fresh_approvals() public {
        setThreshold(3);
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("good"));
        publishAs(ALICE, r);
        publishAs(BOB, r);
        setThreshold(1);
        (uint64 seq,) = index.latest(SENSOR);
        assertEq(seq, 0, "lowering the threshold publishes nothing by itself");
        assertTrue(publishAs(CAROL, r), "one fresh approval meets the new threshold");
    }

    function test_removed_publisher_approvals_are_void() public {
        setThreshold(2);
        FirmwareIndex.Release memory r = full(SENSOR, 1, keccak256("good"));
        publishAs(ALICE, r);
        vm.prank(OWNER);
        index.removePublisher(ALICE, bytes32(0));
        assertTrue(!publishAs(BOB, r), "the removed key's approval does not count");
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPublisher.selector, ALICE, SENSOR));
        publishAs(ALICE, r);
        assertTrue(publishAs(CAROL, r), "two current publishers");
    }

    function test_invalid_thresholds_revert() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.InvalidThreshold.selector, 0, 3));
        index.setThreshold(0);
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.InvalidThreshold.selector, 4, 3));
        index.setThreshold(4);
    }

    // ----- revocation ------------------------------------------------------------------------------------

    function test_revoke_by_publisher_and_owner() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("a")));
        publishAs(ALICE, full(SENSOR, 2, keccak256("b")));
        vm.prank(BOB);
        index.revoke(SENSOR, 2, "bricks rev B boards");
        assertTrue(index.isRevoked(SENSOR, 2), "revoked");
        (, bool rev) = index.release(SENSOR, 2);
        assertTrue(rev, "release() reports it");
        vm.prank(OWNER);
        index.revoke(SENSOR, 1, "superseded");
        assertTrue(index.isRevoked(SENSOR, 1), "owner may revoke");
    }

    function test_revoke_rules() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("a")));
        vm.prank(MALLORY);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPublisher.selector, MALLORY, SENSOR));
        index.revoke(SENSOR, 1, "nope");
        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.UnknownRelease.selector, SENSOR, uint64(2)));
        index.revoke(SENSOR, 2, "future");
        vm.prank(ALICE);
        index.revoke(SENSOR, 1, "bad");
        vm.prank(ALICE);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.AlreadyRevoked.selector, SENSOR, uint64(1)));
        index.revoke(SENSOR, 1, "again");
    }

    function test_revoked_then_republished_takes_the_next_sequence() public {
        publishAs(ALICE, full(SENSOR, 1, keccak256("a")));
        vm.prank(ALICE);
        index.revoke(SENSOR, 1, "bad build");
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.SequenceNotNext.selector, SENSOR, uint64(2), uint64(1)));
        publishAs(ALICE, full(SENSOR, 1, keccak256("a")));
        assertTrue(publishAs(ALICE, full(SENSOR, 2, keccak256("a"))), "same image, next sequence");
        assertTrue(index.isRevoked(SENSOR, 1) && !index.isRevoked(SENSOR, 2), "only the old one stays revoked");
    }

    // ----- ownership -------------------------------------------------------------------------------------

    function test_admin_calls_need_the_owner() public {
        vm.prank(MALLORY);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, MALLORY));
        index.addPublisher(MALLORY, bytes32(0));
        vm.prank(MALLORY);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, MALLORY));
        index.setThreshold(1);
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.PublisherExists.selector, ALICE, bytes32(0)));
        index.addPublisher(ALICE, bytes32(0));
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.PublisherMissing.selector, MALLORY, bytes32(0)));
        index.removePublisher(MALLORY, bytes32(0));
    }

    function test_owner_transfer_is_two_step() public {
        vm.prank(OWNER);
        index.transferOwnership(BOB);
        assertTrue(index.owner() == OWNER, "not yet");
        vm.prank(MALLORY);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotPendingOwner.selector, MALLORY));
        index.acceptOwnership();
        vm.prank(BOB);
        index.acceptOwnership();
        assertTrue(index.owner() == BOB, "transferred");
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(FirmwareIndex.NotOwner.selector, OWNER));
        index.setThreshold(1);
    }

    // ----- the shared encoding ---------------------------------------------------------------------------

    function vectorTerms(string memory json, string memory at) internal pure returns (FirmwareIndex.Terms memory) {
        return FirmwareIndex.Terms({
            hardware: vm.parseJsonBytes32Array(json, string.concat(at, "hardware")),
            notAfter: uint64(vm.parseJsonUint(json, string.concat(at, "not_after"))),
            rolloutStart: uint16(vm.parseJsonUint(json, string.concat(at, "rollout_start"))),
            rolloutStep: uint16(vm.parseJsonUint(json, string.concat(at, "rollout_step"))),
            rolloutInterval: uint64(vm.parseJsonUint(json, string.concat(at, "rollout_interval"))),
            notesCid: vm.parseJsonBytes(json, string.concat(at, "notes_cid"))
        });
    }

    function test_digest_matches_the_shared_vectors() public view {
        string memory json = vm.readFile("../update/testdata/record-vectors.json");
        for (uint256 i = 0; i < 3; i++) {
            string memory at = string.concat("$[", vm.toString(i), "].");
            FirmwareIndex.Release memory r = FirmwareIndex.Release({
                product: bytes32(bytes(vm.parseJsonString(json, string.concat(at, "product")))),
                sequence: uint64(vm.parseJsonUint(json, string.concat(at, "sequence"))),
                baseHash: vm.parseJsonBytes32(json, string.concat(at, "base_hash")),
                targetHash: vm.parseJsonBytes32(json, string.concat(at, "target_hash")),
                targetSize: uint64(vm.parseJsonUint(json, string.concat(at, "target_size"))),
                patchCid: vm.parseJsonBytes(json, string.concat(at, "patch_cid")),
                patchHash: vm.parseJsonBytes32(json, string.concat(at, "patch_hash")),
                patchSize: uint64(vm.parseJsonUint(json, string.concat(at, "patch_size"))),
                kind: FirmwareIndex.Kind(vm.parseJsonUint(json, string.concat(at, "kind"))),
                minSequence: uint64(vm.parseJsonUint(json, string.concat(at, "min_sequence"))),
                terms: vectorTerms(json, at)
            });
            bytes memory encoded = vm.parseJsonBytes(json, string.concat(at, "encoded"));
            assertTrue(keccak256(abi.encode(r)) == keccak256(encoded), "abi.encode matches the vector");
            assertTrue(index.digestOf(r) == vm.parseJsonBytes32(json, string.concat(at, "digest")), "digest");
        }
    }
}
