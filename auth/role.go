package auth

import "context"

// Roles, as stored in users.role.
const (
	roleUser  = "user"
	roleAdmin = "admin"
)

// SetAdmin gives (admin true) or takes away a user's admin role, which
// opens the admin console to them. ErrNoSuchUser.
func (db *DB) SetAdmin(ctx context.Context, address string, admin bool) error {
	role := roleUser
	if admin {
		role = roleAdmin
	}
	a, err := db.updateUser(ctx, address, `role = ?`, role)
	if err == nil {
		db.log.Info("role changed", "user", a, "role", role)
	}
	return err
}
