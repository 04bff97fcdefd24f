// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.30;

/// @title FirmwareIndex: the tamper-evident, ordered index of firmware releases.
/// @notice Devices read `head[product]` and `digest[product][sequence]` through storage proofs and check
/// every release record they are handed against the digest. Events are wake-up hints, never trusted alone.
/// @dev The storage layout is part of the interface (light clients prove slots), so state variables are
/// declared in a fixed order and never reordered:
///   slot 0 owner, 1 pendingOwner, 2 threshold, 3 epoch, 4 publisherCount, 5 globalPublisher,
///   6 productPublisher, 7 head, 8 digest, 9 revoked, 10 knownTarget, 11 approvalCount, 12 approvedBy.
contract FirmwareIndex {
    enum Kind {
        Patch,
        Full
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
    }

    address public owner;
    address public pendingOwner;
    /// @notice Distinct publisher approvals a release needs before `head` moves (m of n).
    uint256 public threshold;
    /// @notice Bumped whenever the approval rules change; pending approvals of older epochs no longer count.
    uint256 public epoch;
    /// @notice Number of publisher registrations (global and per product).
    uint256 public publisherCount;
    mapping(address => bool) public globalPublisher;
    mapping(bytes32 => mapping(address => bool)) public productPublisher;
    mapping(bytes32 => uint64) public head;
    mapping(bytes32 => mapping(uint64 => bytes32)) public digest;
    mapping(bytes32 => mapping(uint64 => bool)) public revoked;
    /// @notice Images (blake3) that some release of the product produced: the only valid patch bases.
    mapping(bytes32 => mapping(bytes32 => bool)) public knownTarget;
    mapping(bytes32 => uint256) public approvalCount;
    mapping(bytes32 => mapping(address => bool)) public approvedBy;

    uint256 public constant MAX_CID_LENGTH = 128;

    event ReleasePublished(bytes32 indexed product, uint64 indexed sequence, bytes32 digest, Release record);
    event ReleaseApproved(
        bytes32 indexed product, uint64 indexed sequence, bytes32 indexed digest, address publisher, uint256 approvals
    );
    event ReleaseRevoked(bytes32 indexed product, uint64 indexed sequence, address by, string reason);
    event PublisherAdded(address indexed publisher, bytes32 indexed product);
    event PublisherRemoved(address indexed publisher, bytes32 indexed product);
    event ThresholdChanged(uint256 threshold, uint256 epoch);
    event OwnershipTransferStarted(address indexed owner, address indexed pendingOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error NotPublisher(address caller, bytes32 product);
    error ZeroAddress();
    error PublisherExists(address publisher, bytes32 product);
    error PublisherMissing(address publisher, bytes32 product);
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

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(address initialOwner, uint256 initialThreshold) {
        if (initialOwner == address(0)) revert ZeroAddress();
        if (initialThreshold == 0) revert InvalidThreshold(initialThreshold, 0);
        owner = initialOwner;
        threshold = initialThreshold;
        emit OwnershipTransferred(address(0), initialOwner);
        emit ThresholdChanged(initialThreshold, 0);
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
        bytes32 key = keccak256(abi.encode(epoch, d));
        if (approvedBy[key][msg.sender]) revert DuplicateApproval(msg.sender, d);
        approvedBy[key][msg.sender] = true;
        uint256 count = approvalCount[key] + 1;
        approvalCount[key] = count;
        emit ReleaseApproved(record.product, record.sequence, d, msg.sender, count);
        if (count < threshold) return false;
        _commit(record, d);
        return true;
    }

    function _commit(Release calldata record, bytes32 d) internal {
        head[record.product] = record.sequence;
        digest[record.product][record.sequence] = d;
        knownTarget[record.product][record.targetHash] = true;
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
    }

    /// @notice Mark a live release as not to be installed. The owner or a publisher of the product may revoke.
    function revoke(bytes32 product, uint64 sequence, string calldata reason) external {
        if (msg.sender != owner && !isPublisher(product, msg.sender)) revert NotPublisher(msg.sender, product);
        if (sequence == 0 || sequence > head[product]) revert UnknownRelease(product, sequence);
        if (revoked[product][sequence]) revert AlreadyRevoked(product, sequence);
        revoked[product][sequence] = true;
        emit ReleaseRevoked(product, sequence, msg.sender, reason);
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

    /// @notice Whether `who` may publish releases of `product` (a global or a per-product publisher).
    function isPublisher(bytes32 product, address who) public view returns (bool) {
        return globalPublisher[who] || productPublisher[product][who];
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
        publisherCount += 1;
        emit PublisherAdded(publisher, product);
    }

    /// @notice Revoke a publisher's right. Pending approvals are voided (a new epoch starts), so approvals
    /// of a removed key never count.
    function removePublisher(address publisher, bytes32 product) external onlyOwner {
        mapping(address => bool) storage set = product == bytes32(0) ? globalPublisher : productPublisher[product];
        if (!set[publisher]) revert PublisherMissing(publisher, product);
        set[publisher] = false;
        publisherCount -= 1;
        epoch += 1;
        emit PublisherRemoved(publisher, product);
    }

    /// @notice Set m of m-of-n. Pending approvals are voided (a new epoch starts).
    function setThreshold(uint256 newThreshold) external onlyOwner {
        if (newThreshold == 0 || newThreshold > publisherCount) {
            revert InvalidThreshold(newThreshold, publisherCount);
        }
        threshold = newThreshold;
        epoch += 1;
        emit ThresholdChanged(newThreshold, epoch);
    }

    /// @notice First step of an ownership transfer; the new owner must accept.
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
