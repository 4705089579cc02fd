/**
 * The authority service's entry: the parts live in ./service/ (one per aggregate) and are
 * composed by ./service/index.ts; this file keeps the import path the rest of the server uses.
 */
export { createService, GUESS_CODES, ServiceError, type AuthorityService, type InstanceRevoked, type RequestStatus, type ServiceOptions } from "./service/index.js";
