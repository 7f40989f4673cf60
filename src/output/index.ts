export * from './summary';
export * from './writer';
export * from './create-writer';
export { xmlAttr } from './xml';
export { CSV_HEADER } from './csv';
