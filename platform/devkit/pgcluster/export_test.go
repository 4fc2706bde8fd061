package pgcluster

// OwnerFile is ownerFile, for tests that leave a server as a killed
// starter would.
const OwnerFile = ownerFile
