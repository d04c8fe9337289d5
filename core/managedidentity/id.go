package managedidentity

import "github.com/mtlspop/mtlspop/core/token"

type idKind uint8

const (
	kindSystem idKind = iota
	kindClientID
	kindResourceID
	kindObjectID
)

// ID names the managed identity a Client acts as: the system-assigned identity, or a
// user-assigned one by client id, resource id or object id.
type ID struct {
	kind  idKind
	value string
}

// SystemAssigned is the host's system-assigned identity.
func SystemAssigned() ID { return ID{kind: kindSystem} }

// UserAssignedClientID is a user-assigned identity named by its client (application) id.
func UserAssignedClientID(clientID string) ID { return ID{kind: kindClientID, value: clientID} }

// UserAssignedResourceID is a user-assigned identity named by its Azure resource id.
func UserAssignedResourceID(resourceID string) ID {
	return ID{kind: kindResourceID, value: resourceID}
}

// UserAssignedObjectID is a user-assigned identity named by its object (principal) id.
func UserAssignedObjectID(objectID string) ID { return ID{kind: kindObjectID, value: objectID} }

// IsSystemAssigned reports whether id is the system-assigned identity.
func (id ID) IsSystemAssigned() bool { return id.kind == kindSystem }

// String is MSAL's cache identity: "system_assigned_managed_identity", or the selector and value.
func (id ID) String() string {
	switch id.kind {
	case kindClientID:
		return "client_id=" + id.value
	case kindResourceID:
		return "resource_id=" + id.value
	case kindObjectID:
		return "object_id=" + id.value
	}
	return "system_assigned_managed_identity"
}

func (id ID) validate() error {
	if id.kind != kindSystem && id.value == "" {
		return token.Errorf(token.CodeInvalidManagedIdentityID, "a user-assigned identity needs a non-empty id")
	}
	if id.kind > kindObjectID {
		return token.Errorf(token.CodeInvalidManagedIdentityID, "unknown identity kind")
	}
	return nil
}

// selector returns the query parameter naming a user-assigned identity. IMDS v1 spells the
// resource id "msi_res_id"; IMDSv2 and App Service spell it "mi_res_id".
func (id ID) selector(resourceIDName string) (name, value string) {
	switch id.kind {
	case kindClientID:
		return "client_id", id.value
	case kindResourceID:
		return resourceIDName, id.value
	case kindObjectID:
		return "object_id", id.value
	}
	return "", ""
}
