//! Every error the API answers, with its ECS code, HTTP status and message. Codes are
//! sent verbatim, typos included (`InvalidParamter.Conflict`), as clients match them.

use palisade_model::{Direction, RuleError};
use palisade_store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    // Gateway and protocol.
    MissingParameter(String),
    InvalidParameter(String),
    InvalidActionNotFound,
    InvalidVersion,
    UnsupportedHttpMethod,
    IncompleteSignature(String),
    SignatureDoesNotMatch { string_to_sign: String },
    InvalidAccessKeyIdNotFound,
    AccessKeyDisabled,
    SignatureNonceUsed,
    InvalidTimeStampExpired,
    InvalidTimeStampFormat,
    UnsupportedSignatureMethod,
    Throttling,
    IdempotentParameterMismatch,
    InvalidClientToken,
    RequestTooLarge,
    RequestTimeout,
    InternalError,

    // Resources.
    InvalidRegionIdNotFound,
    InvalidSecurityGroupIdNotFound,
    InvalidSecurityGroupIdMalformed,
    InvalidVpcIdNotFound,
    InvalidSecurityGroupNameMalformed,
    InvalidDescriptionMalformed,
    InvalidSecurityGroupTypeMalformed,
    InvalidVpcNameMalformed,
    InvalidCidrBlockMalformed,
    VpcDependencyViolation,
    DependencyViolation,
    InvalidNetworkType,
    InvalidInnerAccessPolicy,
    InvalidDirection,
    InvalidNicTypeFilter,
    InvalidPageSize,
    InvalidPageNumber,
    InvalidMaxResults,
    InvalidNextToken,
    InvalidSecurityGroupIdsMalformed,
    QuotaExceedSecurityGroup,
    EnterpriseInnerAccess,

    // Rules (the seed's table and its later additions).
    Rule(RuleError),
    InvalidSourceGroupNotFound(Direction),
    InvalidSourceGroupIdNotFound(Direction),
    AuthorizationLimitExceed,
    DuplicatePermission,
    DuplicatePermissionsInRequest,
    PermissionsConflict,
    RuleNotExist,
    RuleIdNotFound,
    RuleIdRepeated,
    RuleIdsWithPermissions,
    SecurityGroupRuleNotFound,
    ModifyNicType,
    ModifyPeerType,
    RuleDuplicate,
    TooManyPermissions,

    // Instances, interfaces, membership and decisions.
    InvalidInstanceIdNotFound,
    InvalidNetworkInterfaceIdNotFound,
    AlreadyInGroup,
    NicGroupLimit,
    NicNetworkMismatch,
    NicGroupTypeConflict,
    NotInGroup,
    LastGroup,
    PrivateIpMalformed,
    PrivateIpDuplicated,
    PrivateIpMismatch,
    PrivateIpExhausted,
    PublicIpMalformed,
    DeletePrimaryNic,
    GroupParamsConflict,
    InvalidAmount,
    InvalidIpAddress(&'static str),
    InvalidPort(&'static str),
    LocalIpMismatch,
    InvalidProtocolForCheck,
}

pub const RECOMMEND_BASE: &str = "https://api.aliyun.com/troubleshoot?q=";

impl ApiError {
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingParameter(_) => "MissingParameter",
            InvalidParameter(_) => "InvalidParameter",
            InvalidActionNotFound => "InvalidAction.NotFound",
            InvalidVersion => "InvalidVersion",
            UnsupportedHttpMethod => "UnsupportedHTTPMethod",
            IncompleteSignature(_) => "IncompleteSignature",
            SignatureDoesNotMatch { .. } => "SignatureDoesNotMatch",
            InvalidAccessKeyIdNotFound => "InvalidAccessKeyId.NotFound",
            AccessKeyDisabled => "Forbidden.AccessKeyDisabled",
            SignatureNonceUsed => "SignatureNonceUsed",
            InvalidTimeStampExpired => "InvalidTimeStamp.Expired",
            InvalidTimeStampFormat => "InvalidTimeStamp.Format",
            UnsupportedSignatureMethod => "InvalidSignatureMethod",
            Throttling => "Throttling.User",
            IdempotentParameterMismatch => "IdempotentParameterMismatch",
            InvalidClientToken => "InvalidClientToken.Malformed",
            RequestTooLarge => "InvalidParameter.RequestTooLarge",
            RequestTimeout => "RequestTimeout",
            InternalError => "InternalError",
            InvalidRegionIdNotFound => "InvalidRegionId.NotFound",
            InvalidSecurityGroupIdNotFound => "InvalidSecurityGroupId.NotFound",
            InvalidSecurityGroupIdMalformed => "InvalidSecurityGroupId.Malformed",
            InvalidVpcIdNotFound => "InvalidVpcId.NotFound",
            InvalidSecurityGroupNameMalformed => "InvalidSecurityGroupName.Malformed",
            InvalidDescriptionMalformed => "InvalidDescription.Malformed",
            InvalidSecurityGroupTypeMalformed => "InvalidSecurityGroupType.Malformed",
            InvalidVpcNameMalformed => "InvalidVpcName.Malformed",
            InvalidCidrBlockMalformed => "InvalidCidrBlock.Malformed",
            VpcDependencyViolation => "DependencyViolation",
            DependencyViolation => "DependencyViolation",
            InvalidNetworkType => "InvalidNetworkType.Malformed",
            InvalidInnerAccessPolicy => "InvalidPolicy.Malformed",
            InvalidDirection => "InvalidDirection.Malformed",
            InvalidNicTypeFilter => "InvalidNicType.ValueNotSupported",
            InvalidPageSize => "InvalidPageSize.Malformed",
            InvalidPageNumber => "InvalidPageNumber.Malformed",
            InvalidMaxResults => "InvalidParameter.MaxResults",
            InvalidNextToken => "InvalidNextToken.Malformed",
            InvalidSecurityGroupIdsMalformed => "InvalidSecurityGroupIds.Malformed",
            QuotaExceedSecurityGroup => "QuotaExceed.SecurityGroup",
            EnterpriseInnerAccess => "InvalidSecurityGroup.IsEnterprise",
            Rule(r) => rule_code(r),
            InvalidSourceGroupNotFound(_) => "InvalidSourceGroup.NotFound",
            InvalidSourceGroupIdNotFound(Direction::Ingress) => "InvalidSourceGroupId.NotFound",
            InvalidSourceGroupIdNotFound(Direction::Egress) => "InvalidDestGroupId.NotFound",
            AuthorizationLimitExceed => "AuthorizationLimitExceed",
            DuplicatePermission => "InvalidPermission.Duplicate",
            DuplicatePermissionsInRequest => "InvalidParam.DuplicatePermissions",
            PermissionsConflict => "InvalidParam.Permissions",
            RuleNotExist => "InvalidSecurityGroupRule.RuleNotExist",
            RuleIdNotFound => "InvalidSecurityGroupRuleId.NotFound",
            RuleIdRepeated => "InvalidParam.SecurityGroupRuleIdRepeated",
            RuleIdsWithPermissions => "InvalidParam.Permissions",
            SecurityGroupRuleNotFound => "SecurityGroupRule.NotFound",
            ModifyNicType => "InvalidOperation.ModifyNicType",
            ModifyPeerType => "InvalidOperation.ModifySgRuleEntityType",
            RuleDuplicate => "InvalidOperation.RuleDuplicate",
            TooManyPermissions => "InvalidParam.Permissions",
            InvalidInstanceIdNotFound => "InvalidInstanceId.NotFound",
            InvalidNetworkInterfaceIdNotFound => "InvalidNetworkInterfaceId.NotFound",
            AlreadyInGroup => "InvalidInstanceId.AlreadyExists",
            NicGroupLimit => "InstanceSecurityGroupLimitExceeded",
            NicNetworkMismatch => "InvalidInstanceId.Mismatch",
            NicGroupTypeConflict => "InvalidSecurityGroupType.Conflict",
            NotInGroup => "InvalidSecurityGroupAssociation.NotFound",
            LastGroup => "InstanceLastSecurityGroup",
            PrivateIpMalformed => "InvalidPrivateIpAddress.Malformed",
            PrivateIpDuplicated => "InvalidPrivateIpAddress.Duplicated",
            PrivateIpMismatch => "InvalidPrivateIpAddress.Mismatch",
            PrivateIpExhausted => "InvalidVSwitchId.IpNotEnough",
            PublicIpMalformed => "InvalidPublicIpAddress.Malformed",
            DeletePrimaryNic => "InvalidOperation.DeletePrimaryEni",
            GroupParamsConflict => "InvalidParameter.Conflict",
            InvalidAmount => "InvalidAmount.Malformed",
            InvalidIpAddress(_) => "InvalidIpAddress.Malformed",
            InvalidPort(_) => "InvalidPort.Malformed",
            LocalIpMismatch => "InvalidLocalIpAddress.Mismatch",
            InvalidProtocolForCheck => "InvalidIpProtocol.Malformed",
        }
    }

    pub fn http_status(&self) -> u16 {
        use ApiError::*;
        match self {
            InvalidActionNotFound
            | InvalidAccessKeyIdNotFound
            | InvalidRegionIdNotFound
            | InvalidSecurityGroupIdNotFound
            | InvalidVpcIdNotFound
            | RuleIdNotFound
            | SecurityGroupRuleNotFound
            | InvalidSourceGroupIdNotFound(_)
            | InvalidInstanceIdNotFound
            | InvalidNetworkInterfaceIdNotFound
            | NotInGroup => 404,
            AlreadyInGroup | NicGroupLimit | LastGroup | DeletePrimaryNic
            | NicGroupTypeConflict => 403,
            UnsupportedHttpMethod
            | AccessKeyDisabled
            | DependencyViolation
            | VpcDependencyViolation
            | QuotaExceedSecurityGroup
            | AuthorizationLimitExceed => 403,
            InternalError => 500,
            RequestTimeout => 408,
            Rule(
                RuleError::MissingPeer(_)
                | RuleError::GroupPeerNeedsIntranet
                | RuleError::SelfReference
                | RuleError::NetworkTypeMismatch,
            ) => 403,
            _ => 400,
        }
    }

    pub fn message(&self) -> String {
        use ApiError::*;
        match self {
            MissingParameter(p) => format!(
                "The input parameter \"{p}\" that is mandatory for processing this request is not supplied."
            ),
            InvalidParameter(p) => format!("The specified parameter \"{p}\" is not valid."),
            InvalidActionNotFound => "Specified api is not found, please check your url and method.".into(),
            InvalidVersion => "Specified parameter Version is not valid.".into(),
            UnsupportedHttpMethod => "This http method is not supported.".into(),
            IncompleteSignature(why) => format!(
                "The request signature does not conform to Aliyun standards. {why}"
            ),
            SignatureDoesNotMatch { string_to_sign } => format!(
                "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            ),
            InvalidAccessKeyIdNotFound => "Specified access key is not found.".into(),
            AccessKeyDisabled => "The Access Key is disabled.".into(),
            SignatureNonceUsed => "Specified signature nonce was used already.".into(),
            InvalidTimeStampExpired => "Specified time stamp or date value is expired.".into(),
            InvalidTimeStampFormat => "Specified time stamp or date value is not well formatted.".into(),
            UnsupportedSignatureMethod => "Specified signature method is not supported.".into(),
            Throttling => "Request was denied due to user flow control.".into(),
            IdempotentParameterMismatch => "The request is retried with updated parameters.".into(),
            InvalidClientToken => "The specified parameter \"ClientToken\" is not valid.".into(),
            RequestTooLarge => "The request is too large.".into(),
            RequestTimeout => "The request body did not arrive in time.".into(),
            InternalError => {
                "The request processing has failed due to some unknown error, exception or failure.".into()
            }
            InvalidRegionIdNotFound => "The specified RegionId does not exist.".into(),
            InvalidSecurityGroupIdNotFound => "The specified SecurityGroupId does not exist.".into(),
            InvalidSecurityGroupIdMalformed => {
                "The specified parameter SecurityGroupId is essential and size should less than 10".into()
            }
            InvalidVpcIdNotFound => "Specified VPC does not exist.".into(),
            InvalidSecurityGroupNameMalformed => "The specified security group name is not valid.".into(),
            InvalidDescriptionMalformed => "The specified description is not valid.".into(),
            InvalidSecurityGroupTypeMalformed => {
                "The specified SecurityGroupType is not valid: normal or enterprise.".into()
            }
            InvalidVpcNameMalformed => "The specified VpcName is not valid.".into(),
            InvalidCidrBlockMalformed => "The specified CidrBlock is not valid.".into(),
            VpcDependencyViolation => "There are security groups in the specified VPC.".into(),
            DependencyViolation => {
                "There is still instance(s) in the specified security group, or it is referenced by another security group's rule.".into()
            }
            InvalidNetworkType => "The specified NetworkType is not valid: vpc or classic.".into(),
            InvalidInnerAccessPolicy => {
                "The Policy is invalid. Only 'Accept' and 'Drop' are supported. Ignore case.".into()
            }
            InvalidDirection => "The specified Direction is not valid: ingress, egress or all.".into(),
            InvalidNicTypeFilter => "The specified NicType does not exist.".into(),
            InvalidPageSize => "The specified parameter \"PageSize\" is not valid.".into(),
            InvalidPageNumber => "The specified parameter \"PageNumber\" is not valid.".into(),
            InvalidMaxResults => "The specified parameter \"MaxResults\" is not valid.".into(),
            InvalidNextToken => "The specified parameter \"NextToken\" is not valid.".into(),
            InvalidSecurityGroupIdsMalformed => {
                "The specified parameter \"SecurityGroupIds\" is not valid.".into()
            }
            QuotaExceedSecurityGroup => "The maximum number of security groups is reached.".into(),
            EnterpriseInnerAccess => {
                "The InnerAccessPolicy of an enterprise security group is always Drop.".into()
            }
            Rule(r) => rule_message(r),
            InvalidSourceGroupNotFound(Direction::Ingress) => "The specified SourceGroupId does not exist.".into(),
            InvalidSourceGroupNotFound(Direction::Egress) => "The specified DestGroupId does not exist.".into(),
            InvalidSourceGroupIdNotFound(Direction::Ingress) => {
                "The SourceGroupId provided does not exist in our records.".into()
            }
            InvalidSourceGroupIdNotFound(Direction::Egress) => {
                "The DestGroupId provided does not exist in our records.".into()
            }
            AuthorizationLimitExceed => {
                "The maximum number of authorization rules in the security group is exceeded.".into()
            }
            DuplicatePermission => "The specified security group rule already exists.".into(),
            DuplicatePermissionsInRequest => "The specified Permissions contain duplicate rules.".into(),
            PermissionsConflict => {
                "The specified parameter Permissions cannot coexist with other parameters.".into()
            }
            RuleNotExist => "The specified rule does not exist.".into(),
            RuleIdNotFound => "The specified SecurityGroupRuleId is not exists.".into(),
            RuleIdRepeated => "The specified SecurityGroupRuleId is repeated.".into(),
            RuleIdsWithPermissions => {
                "The parameters SecurityGroupRuleId and Permissions cannot be specified together.".into()
            }
            SecurityGroupRuleNotFound => "The target security group rule not exist.".into(),
            ModifyNicType => "The NicType of a security group rule cannot be modified.".into(),
            ModifyPeerType => "The authorization object type of a security group rule cannot be modified.".into(),
            RuleDuplicate => "The modified rule duplicates an existing rule.".into(),
            TooManyPermissions => "The number of Permissions must be between 1 and 100.".into(),
            InvalidInstanceIdNotFound => "The specified InstanceId does not exist.".into(),
            InvalidNetworkInterfaceIdNotFound => "The specified NetworkInterfaceId does not exist.".into(),
            AlreadyInGroup => "The specified instance already exists in the specified security group.".into(),
            NicGroupLimit => "An instance or network interface can be in at most 5 security groups.".into(),
            NicNetworkMismatch => "The security group and the instance or network interface are not in the same network (classic, or the same VPC).".into(),
            NicGroupTypeConflict => "Basic and advanced security groups cannot be mixed on one instance or network interface.".into(),
            NotInGroup => "The instance or network interface is not in the specified security group.".into(),
            LastGroup => "The instance or network interface must stay in at least one security group.".into(),
            PrivateIpMalformed => "The specified parameter \"PrivateIpAddress\" is not valid.".into(),
            PrivateIpDuplicated => "The specified private IP address is already in use.".into(),
            PrivateIpMismatch => "The specified private IP address is not in the CIDR block of the VPC.".into(),
            PrivateIpExhausted => "No private IP address is left in the network.".into(),
            PublicIpMalformed => "The specified parameter \"PublicIpAddress\" is not valid.".into(),
            DeletePrimaryNic => "The primary network interface of an instance cannot be deleted on its own.".into(),
            GroupParamsConflict => "SecurityGroupId and SecurityGroupIds cannot be specified together.".into(),
            InvalidAmount => "The specified parameter \"Amount\" is not valid: 1 to 100.".into(),
            InvalidIpAddress(p) => format!("The specified parameter \"{p}\" is not a valid IPv4 address."),
            InvalidPort(p) => format!("The specified parameter \"{p}\" is not a valid port (0 to 65535)."),
            LocalIpMismatch => "LocalIpAddress is neither the private nor the public address of the network interface.".into(),
            InvalidProtocolForCheck => "The parameter IpProtocol must be TCP, UDP, ICMP, GRE or a protocol number.".into(),
        }
    }
}

fn rule_code(r: &RuleError) -> &'static str {
    match r {
        RuleError::MissingParameter(_) | RuleError::MissingPeer(_) => "MissingParameter",
        RuleError::InvalidIpProtocol => "InvalidIpProtocol.Malformed",
        RuleError::ProtocolPortMismatch => "OperationDenied",
        RuleError::PortRangeMalformed(_) => "InvalidParam.PortRange",
        RuleError::PriorityMalformed => "InvalidPriority.Malformed",
        RuleError::PriorityOutOfRange => "InvalidPriority.ValueNotSupported",
        RuleError::PolicyMalformed => "InvalidPolicy.Malformed",
        RuleError::NicTypeUnknown => "InvalidNicType.ValueNotSupported",
        RuleError::NicTypeMismatch => "InvalidNicType.Mismatch",
        RuleError::PeerCidrMalformed(Direction::Ingress)
        | RuleError::LocalCidrMalformed(Direction::Egress) => "InvalidSourceCidrIp.Malformed",
        RuleError::PeerCidrMalformed(Direction::Egress)
        | RuleError::LocalCidrMalformed(Direction::Ingress) => "InvalidDestCidrIp.Malformed",
        RuleError::OwnerIdMalformed(Direction::Ingress) => "InvalidSourceGroupOwnerId.Malformed",
        RuleError::OwnerIdMalformed(Direction::Egress) => "InvalidDestGroupOwnerId.Malformed",
        RuleError::DescriptionMalformed => "InvalidSecurityGroupDiscription.Malformed",
        RuleError::GroupPeerNeedsIntranet | RuleError::VpcMismatch => {
            "InvalidSourceGroupId.Mismatch"
        }
        RuleError::SelfReference => "InvalidParamter.Conflict",
        RuleError::NetworkTypeMismatch => "InvalidNetworkType.Mismatch",
        RuleError::EnterpriseGroupReference => "InvalidGroupAuthParameter.OperationDenied",
        RuleError::EnterprisePolicy => "InvalidGroupParameter.OperationDenied",
    }
}

fn rule_message(r: &RuleError) -> String {
    match r {
        RuleError::MissingParameter(p) => format!(
            "The input parameter \"{p}\" that is mandatory for processing this request is not supplied."
        ),
        RuleError::MissingPeer(d) => format!(
            "The input parameter \"{}\" or \"{}\" cannot be both blank.",
            d.peer_group_param(),
            d.peer_cidr_param()
        ),
        // Names PortRange although the protocol is wrong: the service says so (seed, sic).
        RuleError::InvalidIpProtocol => "The specified parameter \"PortRange\" is not valid.".into(),
        RuleError::ProtocolPortMismatch => {
            "The specified IpProtocol does not exist or IpProtocol and PortRange do not match.".into()
        }
        RuleError::PortRangeMalformed(p) => format!(
            "The specified parameter {p} is not valid. It should be two integers less than 65535 in ?/? format."
        ),
        RuleError::PriorityMalformed => "The specified parameter \"Priority\" is not valid.".into(),
        RuleError::PriorityOutOfRange => "The specified Priority is invalid.".into(),
        RuleError::PolicyMalformed => "The specified parameter \"Policy\" is not valid.".into(),
        RuleError::NicTypeUnknown => "The specified NicType does not exist.".into(),
        RuleError::NicTypeMismatch => "Specified nic type conflicts with the authorization record.".into(),
        RuleError::PeerCidrMalformed(d) => format!(
            "The specified parameter \"{}\" is not valid.",
            d.peer_cidr_param()
        ),
        RuleError::LocalCidrMalformed(d) => format!(
            "The specified parameter \"{}\" is not valid.",
            d.local_cidr_param()
        ),
        RuleError::OwnerIdMalformed(d) => format!(
            "The specified parameter \"{}\" is not valid.",
            d.peer_owner_id_param()
        ),
        RuleError::DescriptionMalformed => "The specified security group rule description is not valid.".into(),
        RuleError::GroupPeerNeedsIntranet => "NicType is required or NicType expects intranet.".into(),
        RuleError::VpcMismatch => "Specified security group and source group are not in the same VPC.".into(),
        RuleError::SelfReference => "The specified SecurityGroupId should be different from the SourceGroupId.".into(),
        RuleError::NetworkTypeMismatch => "The specified SecurityGroup network type should be same with SourceGroup network type (vpc or classic).".into(),
        RuleError::EnterpriseGroupReference => {
            "Enterprise level security groups do not support security group authorization.".into()
        }
        RuleError::EnterprisePolicy => "The attributes Policy, SourceGroupId, DestGroupId of enterprise level security groups are not allowed to be set or modified.".into(),
    }
}

impl From<RuleError> for ApiError {
    fn from(r: RuleError) -> Self {
        ApiError::Rule(r)
    }
}

impl From<StoreError> for ApiError {
    fn from(_: StoreError) -> Self {
        ApiError::InternalError
    }
}
