// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

/// @title FirmwareIndex: the tamper-evident, ordered index of firmware releases, with rollout control.
/// @notice Devices read `head[product]`, `digest[product][sequence]`, `revoked[product][sequence]`,
/// `timing[product][sequence]` and `pausedUntil[product][0 or sequence]` through storage proofs and check every
/// release record they are handed against the digest. Events are wake-up hints, never trusted alone.
/// @dev The storage layout is part of the interface (light clients prove slots), so state variables are
/// declared in a fixed order and never reordered; new ones are only appended:
///   slot 0 owner, 1 pendingOwner, 2 threshold, 3 epoch, 4 publisherCount, 5 globalPublisher,
///   6 productPublisher, 7 head, 8 digest, 9 revoked, 10 knownTarget, 11 approvalCount, 12 approvedBy,
///   13 timing, 14 pausedUntil, 15 activationDelay, 16 pauseBound, 17 globalGuardian, 18 productGuardian,
///   19 registrations, 20 resumeNonce.
contract FirmwareIndex {
    enum Kind {
        Patch,
        Full
    }

    /// @notice Who may install a release, until when, and how fast it reaches the fleet. Approved with the
    /// record (it is part of the digest).
    struct Terms {
        /// Hardware classes (SUIT-style 32-byte class ids) the release is for, strictly ascending; empty: all.
        bytes32[] hardware;
        /// Chain time (unix seconds) from which the release must no longer be installed; 0: never expires.
        uint64 notAfter;
        /// Share of the fleet (basis points, 10000 = all) eligible once the release is installable.
        uint16 rolloutStart;
        /// Basis points added every `rolloutInterval` seconds after that; 0 together with a zero interval.
        uint16 rolloutStep;
        uint64 rolloutInterval;
        /// CID of release notes or an SBOM; empty: none.
        bytes notesCid;
    }

    /// @notice A release as devices see it; `digest = keccak256(abi.encode(record))`.
    struct Release {
        bytes32 product;
        uint64 sequence;
        bytes32 baseHash;
        bytes32 targetHash;
        uint64 targetSize;
        bytes patchCid;
        bytes32 patchHash;
        uint64 patchSize;
        Kind kind;
        uint64 minSequence;
        Terms terms;
    }

    /// @notice When a release went live and when it becomes installable (live + the product's delay then).
    /// Packed in one slot: `liveAt` in the low 8 bytes, `installableAt` in the next 8.
    struct Timing {
        uint64 liveAt;
        uint64 installableAt;
    }

    address public owner;
    address public pendingOwner;
    /// @notice Distinct publisher approvals a release, a resume or a revocation needs (m of n).
    uint256 public threshold;
    /// @notice Bumped whenever the approval rules change; pending approvals of older epochs no longer count.
    uint256 public epoch;
    /// @notice Number of distinct publisher addresses (global or for any product).
    uint256 public publisherCount;
    mapping(address => bool) public globalPublisher;
    mapping(bytes32 => mapping(address => bool)) public productPublisher;
    mapping(bytes32 => uint64) public head;
    mapping(bytes32 => mapping(uint64 => bytes32)) public digest;
    /// @notice Revoked (by the threshold) or cancelled (by a guardian inside the delay): never install.
    mapping(bytes32 => mapping(uint64 => bool)) public revoked;
    /// @notice Images (blake3) that some release of the product produced: the only valid patch bases.
    mapping(bytes32 => mapping(bytes32 => bool)) public knownTarget;
    mapping(bytes32 => uint256) public approvalCount;
    mapping(bytes32 => mapping(address => bool)) public approvedBy;
    mapping(bytes32 => mapping(uint64 => Timing)) public timing;
    /// @notice Chain time until which a product (sequence 0) or one release is paused; paused while
    /// `block.timestamp < pausedUntil`. The owner's pauses last until resumed (type(uint64).max).
    mapping(bytes32 => mapping(uint64 => uint64)) public pausedUntil;
    /// @notice Seconds between a release going live and becoming installable, per product (the veto window).
    mapping(bytes32 => uint64) public activationDelay;
    /// @notice How long a pause by one publisher or guardian key lasts, in seconds.
    uint64 public pauseBound;
    mapping(address => bool) public globalGuardian;
    mapping(bytes32 => mapping(address => bool)) public productGuardian;
    /// @notice Publisher registrations per address (global and per product), to count distinct publishers.
    mapping(address => uint256) public registrations;
    /// @notice Bumped by every resume, so approvals of an earlier resume never count again.
    mapping(bytes32 => mapping(uint64 => uint256)) public resumeNonce;

    uint256 public constant MAX_CID_LENGTH = 128;
    uint256 public constant MAX_HARDWARE_CLASSES = 16;
    uint16 public constant FULL_SHARE = 10000;
    uint64 public constant MAX_DELAY = 30 days;
    uint64 public constant MAX_PAUSE_BOUND = 30 days;
    uint64 public constant DEFAULT_PAUSE_BOUND = 3 days;

    event ReleasePublished(bytes32 indexed product, uint64 indexed sequence, bytes32 digest, Release record);
    event ReleaseApproved(
        bytes32 indexed product, uint64 indexed sequence, bytes32 indexed digest, address publisher, uint256 approvals
    );
    event ReleaseRevoked(bytes32 indexed product, uint64 indexed sequence, address by, string reason);
    event RevocationApproved(bytes32 indexed product, uint64 indexed sequence, address publisher, uint256 approvals);
    event ReleaseCancelled(bytes32 indexed product, uint64 indexed sequence, address guardian, string reason);
    event Paused(bytes32 indexed product, uint64 indexed sequence, address by, uint64 until);
    event ResumeApproved(bytes32 indexed product, uint64 indexed sequence, address publisher, uint256 approvals);
    event Resumed(bytes32 indexed product, uint64 indexed sequence, address by);
    event PublisherAdded(address indexed publisher, bytes32 indexed product);
    event PublisherRemoved(address indexed publisher, bytes32 indexed product);
    event GuardianAdded(address indexed guardian, bytes32 indexed product);
    event GuardianRemoved(address indexed guardian, bytes32 indexed product);
    event ActivationDelayChanged(bytes32 indexed product, uint64 delay);
    event PauseBoundChanged(uint64 bound);
    event ThresholdChanged(uint256 threshold, uint256 epoch);
    event OwnershipTransferStarted(address indexed owner, address indexed pendingOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error NotPublisher(address caller, bytes32 product);
    error NotGuardian(address caller, bytes32 product);
    error ZeroAddress();
    error PublisherExists(address publisher, bytes32 product);
    error PublisherMissing(address publisher, bytes32 product);
    error GuardianExists(address guardian, bytes32 product);
    error GuardianMissing(address guardian, bytes32 product);
    error InvalidThreshold(uint256 threshold, uint256 publishers);
    error SequenceNotNext(bytes32 product, uint64 expected, uint64 got);
    error UnknownBase(bytes32 product, bytes32 baseHash);
    error FullImageWithBase(bytes32 baseHash);
    error PatchWithoutBase();
    error EmptyField(string field);
    error CidTooLong(uint256 length);
    error MinSequenceAboveSequence(uint64 minSequence, uint64 sequence);
    error DuplicateApproval(address publisher, bytes32 digest);
    error UnknownRelease(bytes32 product, uint64 sequence);
    error AlreadyRevoked(bytes32 product, uint64 sequence);
    error TooManyHardwareClasses(uint256 count);
    error HardwareClassesNotAscending(uint256 index);
    error ExpiresTooSoon(uint64 notAfter, uint64 installableAt);
    error InvalidRollout(uint16 start, uint16 step, uint64 interval);
    error NotPaused(bytes32 product, uint64 sequence);
    error WindowClosed(bytes32 product, uint64 sequence, uint64 installableAt);
    error DelayTooLong(uint64 delay, uint64 limit);
    error InvalidPauseBound(uint64 bound, uint64 limit);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(address initialOwner, uint256 initialThreshold) {
        if (initialOwner == address(0)) revert ZeroAddress();
        if (initialThreshold == 0) revert InvalidThreshold(initialThreshold, 0);
        owner = initialOwner;
        threshold = initialThreshold;
        pauseBound = DEFAULT_PAUSE_BOUND;
        emit OwnershipTransferred(address(0), initialOwner);
        emit ThresholdChanged(initialThreshold, 0);
        emit PauseBoundChanged(DEFAULT_PAUSE_BOUND);
    }

    // ----- publishing -------------------------------------------------------------------------------------

    /// @notice Propose (or approve) a release. With threshold 1 it is live at once; otherwise it becomes live
    /// when `threshold` distinct publishers have approved the same record in the current epoch.
    /// @return live whether this call made the release live.
    function publish(Release calldata record) external returns (bool live) {
        return _approve(record);
    }

    /// @notice The same as `publish`: a further publisher approving a pending record.
    function approve(Release calldata record) external returns (bool live) {
        return _approve(record);
    }

    function _approve(Release calldata record) internal returns (bool live) {
        if (!isPublisher(record.product, msg.sender)) revert NotPublisher(msg.sender, record.product);
        _validate(record);
        bytes32 d = keccak256(abi.encode(record));
        if (threshold == 1) {
            _commit(record, d);
            return true;
        }
        uint256 count = _vote(d);
        emit ReleaseApproved(record.product, record.sequence, d, msg.sender, count);
        if (count < threshold) return false;
        _commit(record, d);
        return true;
    }

    /// @dev One approval of `action` by `msg.sender` in the current epoch; returns the approvals so far.
    function _vote(bytes32 action) internal returns (uint256 count) {
        bytes32 key = keccak256(abi.encode(epoch, action));
        if (approvedBy[key][msg.sender]) revert DuplicateApproval(msg.sender, action);
        approvedBy[key][msg.sender] = true;
        count = approvalCount[key] + 1;
        approvalCount[key] = count;
    }

    function _commit(Release calldata record, bytes32 d) internal {
        head[record.product] = record.sequence;
        digest[record.product][record.sequence] = d;
        knownTarget[record.product][record.targetHash] = true;
        uint64 now_ = uint64(block.timestamp);
        timing[record.product][record.sequence] = Timing(now_, now_ + activationDelay[record.product]);
        emit ReleasePublished(record.product, record.sequence, d, record);
    }

    function _validate(Release calldata r) internal view {
        uint64 expected = head[r.product] + 1;
        if (r.sequence != expected) revert SequenceNotNext(r.product, expected, r.sequence);
        if (r.targetHash == bytes32(0)) revert EmptyField("targetHash");
        if (r.patchHash == bytes32(0)) revert EmptyField("patchHash");
        if (r.targetSize == 0) revert EmptyField("targetSize");
        if (r.patchSize == 0) revert EmptyField("patchSize");
        if (r.patchCid.length == 0) revert EmptyField("patchCid");
        if (r.patchCid.length > MAX_CID_LENGTH) revert CidTooLong(r.patchCid.length);
        if (r.minSequence > r.sequence) revert MinSequenceAboveSequence(r.minSequence, r.sequence);
        if (r.kind == Kind.Full) {
            if (r.baseHash != bytes32(0)) revert FullImageWithBase(r.baseHash);
        } else {
            if (r.baseHash == bytes32(0)) revert PatchWithoutBase();
            if (!knownTarget[r.product][r.baseHash]) revert UnknownBase(r.product, r.baseHash);
        }
        _validateTerms(r.product, r.terms);
    }

    function _validateTerms(bytes32 product, Terms calldata t) internal view {
        uint256 n = t.hardware.length;
        if (n > MAX_HARDWARE_CLASSES) revert TooManyHardwareClasses(n);
        for (uint256 i = 0; i < n; i++) {
            // Ascending and non-zero: no duplicates, one encoding per set.
            if (t.hardware[i] == bytes32(0) || (i > 0 && t.hardware[i] <= t.hardware[i - 1])) {
                revert HardwareClassesNotAscending(i);
            }
        }
        uint64 installableAt = uint64(block.timestamp) + activationDelay[product];
        if (t.notAfter != 0 && t.notAfter <= installableAt) revert ExpiresTooSoon(t.notAfter, installableAt);
        bool stepped = t.rolloutStep != 0;
        if (
            t.rolloutStart > FULL_SHARE || t.rolloutStep > FULL_SHARE || stepped != (t.rolloutInterval != 0)
                || (t.rolloutStart == 0 && !stepped)
        ) revert InvalidRollout(t.rolloutStart, t.rolloutStep, t.rolloutInterval);
        if (t.notesCid.length > MAX_CID_LENGTH) revert CidTooLong(t.notesCid.length);
    }

    function _live(bytes32 product, uint64 sequence) internal view {
        if (sequence == 0 || sequence > head[product]) revert UnknownRelease(product, sequence);
    }

    // ----- stopping a release -----------------------------------------------------------------------------

    /// @notice Mark a live release as never to be installed. The owner revokes at once; publishers of the
    /// product need the threshold (m distinct approvals in the current epoch), so one stolen key cannot.
    /// @return done whether this call revoked the release.
    function revoke(bytes32 product, uint64 sequence, string calldata reason) external returns (bool done) {
        _live(product, sequence);
        if (revoked[product][sequence]) revert AlreadyRevoked(product, sequence);
        if (msg.sender != owner) {
            if (!isPublisher(product, msg.sender)) revert NotPublisher(msg.sender, product);
            if (threshold > 1) {
                uint256 count = _vote(keccak256(abi.encode("revoke", product, sequence)));
                emit RevocationApproved(product, sequence, msg.sender, count);
                if (count < threshold) return false;
            }
        }
        revoked[product][sequence] = true;
        emit ReleaseRevoked(product, sequence, msg.sender, reason);
        return true;
    }

    /// @notice Inside a release's activation delay, one guardian (or the owner) cancels it for good.
    function cancel(bytes32 product, uint64 sequence, string calldata reason) external {
        if (msg.sender != owner && !isGuardian(product, msg.sender)) revert NotGuardian(msg.sender, product);
        _live(product, sequence);
        if (revoked[product][sequence]) revert AlreadyRevoked(product, sequence);
        uint64 installableAt = timing[product][sequence].installableAt;
        if (block.timestamp >= installableAt) revert WindowClosed(product, sequence, installableAt);
        revoked[product][sequence] = true;
        emit ReleaseCancelled(product, sequence, msg.sender, reason);
    }

    /// @notice Hold a product (`sequence` 0) or one live release. A publisher's or guardian's pause lasts
    /// `pauseBound` seconds (a pause never shortens one in force); the owner's lasts until resumed.
    function pause(bytes32 product, uint64 sequence) external {
        uint64 until;
        if (msg.sender == owner) {
            until = type(uint64).max;
        } else {
            if (!isPublisher(product, msg.sender) && !isGuardian(product, msg.sender)) {
                revert NotGuardian(msg.sender, product);
            }
            until = uint64(block.timestamp) + pauseBound;
        }
        if (sequence != 0) _live(product, sequence);
        if (until > pausedUntil[product][sequence]) pausedUntil[product][sequence] = until;
        emit Paused(product, sequence, msg.sender, pausedUntil[product][sequence]);
    }

    /// @notice Lift a pause (it then ends at this block's time): the owner at once, publishers of the product
    /// with the threshold.
    /// @return done whether this call lifted the pause.
    function resume(bytes32 product, uint64 sequence) external returns (bool done) {
        if (block.timestamp >= pausedUntil[product][sequence]) revert NotPaused(product, sequence);
        if (msg.sender != owner) {
            if (!isPublisher(product, msg.sender)) revert NotPublisher(msg.sender, product);
            if (threshold > 1) {
                bytes32 action = keccak256(abi.encode("resume", product, sequence, resumeNonce[product][sequence]));
                uint256 count = _vote(action);
                emit ResumeApproved(product, sequence, msg.sender, count);
                if (count < threshold) return false;
            }
        }
        // Ends the pause now rather than zeroing the slot: a slot stays in the trie, so its proof is a
        // plain inclusion proof on every node implementation.
        pausedUntil[product][sequence] = uint64(block.timestamp);
        resumeNonce[product][sequence] += 1;
        emit Resumed(product, sequence, msg.sender);
        return true;
    }

    // ----- views ------------------------------------------------------------------------------------------

    /// @notice The newest live release of a product (sequence 0 and a zero digest when there is none).
    function latest(bytes32 product) external view returns (uint64 sequence, bytes32 releaseDigest) {
        sequence = head[product];
        releaseDigest = digest[product][sequence];
    }

    /// @notice One release's digest and whether it was revoked.
    function release(bytes32 product, uint64 sequence) external view returns (bytes32 releaseDigest, bool isRevoked_) {
        return (digest[product][sequence], revoked[product][sequence]);
    }

    function isRevoked(bytes32 product, uint64 sequence) external view returns (bool) {
        return revoked[product][sequence];
    }

    /// @notice What a device proves about a release: when it went live, when it becomes installable, until
    /// when it is held (the later of the product's and the release's pause) and whether it is revoked.
    function rolloutState(bytes32 product, uint64 sequence)
        external
        view
        returns (uint64 liveAt, uint64 installableAt, uint64 heldUntil, bool isRevoked_)
    {
        Timing memory t = timing[product][sequence];
        uint64 a = pausedUntil[product][0];
        uint64 b = pausedUntil[product][sequence];
        return (t.liveAt, t.installableAt, a > b ? a : b, revoked[product][sequence]);
    }

    /// @notice Whether `who` may publish releases of `product` (a global or a per-product publisher).
    function isPublisher(bytes32 product, address who) public view returns (bool) {
        return globalPublisher[who] || productPublisher[product][who];
    }

    /// @notice Whether `who` may pause and cancel releases of `product` (a global or a per-product guardian).
    function isGuardian(bytes32 product, address who) public view returns (bool) {
        return globalGuardian[who] || productGuardian[product][who];
    }

    /// @notice The digest that `abi.encode(record)` hashes to, as devices compute it.
    function digestOf(Release calldata record) external pure returns (bytes32) {
        return keccak256(abi.encode(record));
    }

    // ----- administration ---------------------------------------------------------------------------------

    /// @notice Allow `publisher` to publish `product`, or every product when `product` is zero.
    function addPublisher(address publisher, bytes32 product) external onlyOwner {
        if (publisher == address(0)) revert ZeroAddress();
        mapping(address => bool) storage set = product == bytes32(0) ? globalPublisher : productPublisher[product];
        if (set[publisher]) revert PublisherExists(publisher, product);
        set[publisher] = true;
        if (registrations[publisher]++ == 0) publisherCount += 1;
        emit PublisherAdded(publisher, product);
    }

    /// @notice Revoke a publisher's right. Pending approvals are voided (a new epoch starts), so approvals
    /// of a removed key never count. Reverts if fewer distinct publishers than the threshold would remain.
    function removePublisher(address publisher, bytes32 product) external onlyOwner {
        mapping(address => bool) storage set = product == bytes32(0) ? globalPublisher : productPublisher[product];
        if (!set[publisher]) revert PublisherMissing(publisher, product);
        set[publisher] = false;
        if (--registrations[publisher] == 0) publisherCount -= 1;
        if (publisherCount < threshold) revert InvalidThreshold(threshold, publisherCount);
        epoch += 1;
        emit PublisherRemoved(publisher, product);
    }

    /// @notice Allow `guardian` to pause and cancel `product`, or every product when `product` is zero.
    function addGuardian(address guardian, bytes32 product) external onlyOwner {
        if (guardian == address(0)) revert ZeroAddress();
        mapping(address => bool) storage set = product == bytes32(0) ? globalGuardian : productGuardian[product];
        if (set[guardian]) revert GuardianExists(guardian, product);
        set[guardian] = true;
        emit GuardianAdded(guardian, product);
    }

    function removeGuardian(address guardian, bytes32 product) external onlyOwner {
        mapping(address => bool) storage set = product == bytes32(0) ? globalGuardian : productGuardian[product];
        if (!set[guardian]) revert GuardianMissing(guardian, product);
        set[guardian] = false;
        emit GuardianRemoved(guardian, product);
    }

    /// @notice Seconds between a release of `product` going live and becoming installable; applies to releases
    /// that go live after this call.
    function setActivationDelay(bytes32 product, uint64 delay) external onlyOwner {
        if (delay > MAX_DELAY) revert DelayTooLong(delay, MAX_DELAY);
        activationDelay[product] = delay;
        emit ActivationDelayChanged(product, delay);
    }

    /// @notice How long a pause by one publisher or guardian lasts (1 s to 30 days); pauses in force keep theirs.
    function setPauseBound(uint64 bound) external onlyOwner {
        if (bound == 0 || bound > MAX_PAUSE_BOUND) revert InvalidPauseBound(bound, MAX_PAUSE_BOUND);
        pauseBound = bound;
        emit PauseBoundChanged(bound);
    }

    /// @notice Set m of m-of-n (at most the number of distinct publishers). Pending approvals are voided.
    function setThreshold(uint256 newThreshold) external onlyOwner {
        if (newThreshold == 0 || newThreshold > publisherCount) {
            revert InvalidThreshold(newThreshold, publisherCount);
        }
        threshold = newThreshold;
        epoch += 1;
        emit ThresholdChanged(newThreshold, epoch);
    }

    /// @notice First step of an ownership transfer; the new owner (an account or a contract such as a
    /// multisig) must accept.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }
}
