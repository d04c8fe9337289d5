package main

import (
	"flag"
	"time"

	"github.com/mtlspop/mtlspop/core/managedidentity"
)

// identityFlags are the identity selectors shared by token and call.
type identityFlags struct {
	clientID, resourceID, objectID string
	timeout                        time.Duration
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.clientID, "client-id", "", "user-assigned identity by client id")
	fs.StringVar(&f.resourceID, "resource-id", "", "user-assigned identity by Azure resource id")
	fs.StringVar(&f.objectID, "object-id", "", "user-assigned identity by object id")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "give up after this long")
}

func (f *identityFlags) id() (managedidentity.ID, error) {
	n := 0
	id := managedidentity.SystemAssigned()
	for _, sel := range []struct {
		v  string
		mk func(string) managedidentity.ID
	}{
		{f.clientID, managedidentity.UserAssignedClientID},
		{f.resourceID, managedidentity.UserAssignedResourceID},
		{f.objectID, managedidentity.UserAssignedObjectID},
	} {
		if sel.v != "" {
			n++
			id = sel.mk(sel.v)
		}
	}
	if n > 1 {
		return id, usageError("give at most one of --client-id, --resource-id, --object-id")
	}
	return id, nil
}

func (f *identityFlags) client() (*managedidentity.Client, error) {
	id, err := f.id()
	if err != nil {
		return nil, err
	}
	return managedidentity.New(id)
}
